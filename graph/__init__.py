"""vectorql's API surface and composition root.

- ``graph.app``: ``create_app(settings)``, which builds and wires everything below.
- ``graph.schema``: the GraphQL schema (types, inputs, scalars, enums, root fields, error mapping).
- ``graph.http``: the HTTP side (router, auth gate, limits, transport, GraphiQL, health).
- ``graph.cli``: the ``vectorql`` command.
- ``graph.settings``, ``graph.telemetry``, ``graph.logs``: what every part above is configured by
  and reports through.
"""
