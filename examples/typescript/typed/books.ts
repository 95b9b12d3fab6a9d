// What the typed client gives: filters, inputs and results typed by the collection's fields.
import type {
  TypedBooksQuery,
  TypedBooksQueryVariables,
  UpsertBooksMutationVariables,
} from "./generated/books.js";

export const recentScienceFiction: TypedBooksQueryVariables = {
  vector: [1, 0, 0, 0],
  where: { year: { _gte: 1950 }, tags: { _contains: "sf" } },
};

export const dune: UpsertBooksMutationVariables = {
  records: [{ id: "dune", vector: [1, 0, 0, 0], title: "Dune", year: 1965, tags: ["sf"] }],
};

export function titles(data: TypedBooksQuery): (string | null | undefined)[] {
  return data.books.records.edges.map((edge) => edge.node.title);
}
