// GraphQL Code Generator: TypeScript types for vectorql's schema and the example operations.
// `npm run codegen` writes src/generated/ (not committed: it is regenerated from the schema).
//   schema.ts      every schema type (the `typescript` plugin)
//   operations.ts  result and variables types of ../operations/*.graphql (`typescript-operations`,
//                  importing the schema types) and each operation's text (./plugins/documents.cjs)
import type { CodegenConfig } from "@graphql-codegen/cli";

const JSON_VALUE = "import('../json.js').JSONValue";

const shared = {
  // Every custom scalar must be mapped: an unmapped one fails the run instead of becoming `any`.
  strictScalars: true,
  scalars: {
    // Input: a list of numbers or a base64 string of little-endian float32 values.
    // Output (Record.vector is [Float!]) is always a list of numbers.
    Vector: { input: "number[] | string", output: "number[]" },
    JSON: { input: JSON_VALUE, output: JSON_VALUE },
    // ISO 8601 with an offset, e.g. "2026-11-25T12:00:00.123456+00:00".
    DateTime: { input: "string", output: "string" },
    ID: { input: "string", output: "string" },
  },
  enumType: "string-literal",
  useTypeImports: true,
  importExtension: ".js",
} as const;

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: "../operations/*.graphql",
  generates: {
    "src/generated/schema.ts": {
      plugins: ["typescript"],
      config: { ...shared, enumsAsTypes: true },
    },
    "src/generated/operations.ts": {
      plugins: ["typescript-operations", "./plugins/documents.cjs"],
      config: { ...shared, importSchemaTypesFrom: "./src/generated/schema.ts" },
    },
  },
};

export default config;
