"""Use cases: plain async functions over the store that enforce the API's rules.

No Strawberry, no FastAPI: each function takes its dependencies and a request object explicitly.
"""
