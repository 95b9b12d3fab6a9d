// A local GraphQL Code Generator plugin: emits each operation's source text as a typed string
// constant (`SearchDocument`), so client.ts sends exactly the documents the types were generated
// from. Runs after the `typescript-operations` plugin, whose type names it follows
// (`SearchQuery`, `SearchQueryVariables`).
"use strict";

const { print, Kind } = require("graphql");

const suffix = { query: "Query", mutation: "Mutation", subscription: "Subscription" };

module.exports = {
  plugin(_schema, documents) {
    const lines = [
      "",
      "/** An operation's source text, tagged with its result and variables types. */",
      "export type Operation<TResult, TVariables> = string & {",
      "  readonly __result?: TResult;",
      "  readonly __variables?: TVariables;",
      "};",
    ];
    for (const { document } of documents) {
      for (const definition of document.definitions) {
        if (definition.kind !== Kind.OPERATION_DEFINITION || !definition.name) continue;
        const name = definition.name.value;
        const type = name + suffix[definition.operation];
        lines.push(
          "",
          `export const ${name}Document = ${JSON.stringify(print(definition))} as Operation<`,
          `  ${type},`,
          `  ${type}Variables`,
          ">;",
        );
      }
    }
    return lines.join("\n") + "\n";
  },
};
