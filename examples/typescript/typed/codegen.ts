// Typed collections: TypeScript types generated from a running server's live schema, which has
// each collection's own types (BooksRecord, BooksFilter, BooksInput, ...), and the operations in
// typed/operations/. Needs a server with a collection "books" (title STRING!, year INT,
// tags STRING_LIST):
//   VECTORQL_URL=http://127.0.0.1:8000/graphql npx graphql-codegen --config typed/codegen.ts
// writes typed/generated/books.ts (not committed: it is the live schema's).
// `vectorql schema --live` prints the same schema as SDL.
import type { CodegenConfig } from "@graphql-codegen/cli";

const JSON_VALUE = "import('../../src/json.js').JSONValue";

const config: CodegenConfig = {
  schema: process.env.VECTORQL_URL ?? "http://127.0.0.1:8000/graphql",
  documents: "typed/operations/*.graphql",
  generates: {
    "typed/generated/books.ts": {
      plugins: ["typescript-operations"], // with the input types the operations use
      config: {
        strictScalars: true,
        scalars: {
          Vector: { input: "number[] | string", output: "number[]" },
          JSON: { input: JSON_VALUE, output: JSON_VALUE },
          DateTime: { input: "string", output: "string" },
          // INT fields are 64-bit, sent as JSON numbers: exact up to 2^53 in JavaScript.
          Long: { input: "number", output: "number" },
          ID: { input: "string", output: "string" },
        },
        enumType: "string-literal",
        enumsAsTypes: true,
        useTypeImports: true,
        // Only what the operations use: the live schema has every collection's types.
        onlyOperationTypes: true,
      },
    },
  },
};

export default config;
