// A small typed vectorql client over fetch: every method's variables and result are the types
// GraphQL Code Generator made from ../../schema.graphql and ../operations/*.graphql.
// Works in browsers and in Node.js 18+ (both have fetch).
import {
  CreateCollectionDocument,
  RecordsPageDocument,
  SearchDocument,
  UpsertRecordsDocument,
} from "./generated/operations.js";
import type {
  CreateCollectionMutation,
  Operation,
  RecordsPageQuery,
  RecordsPageQueryVariables,
  SearchQuery,
  SearchQueryVariables,
  UpsertRecordsMutation,
} from "./generated/operations.js";
import type { CreateCollectionInput, Filter, RecordInput } from "./generated/schema.js";

export interface ClientOptions {
  /** The GraphQL endpoint, e.g. "http://127.0.0.1:8000/graphql". */
  endpoint: string;
  /** Sent as `Authorization: Bearer <apiKey>` when set. */
  apiKey?: string;
  /** Another fetch (tests, retries, a proxy); defaults to the global one. */
  fetch?: typeof fetch;
}

/** One entry of a GraphQL response's `errors`; `extensions.code` says what went wrong. */
export interface GraphQLErrorEntry {
  message: string;
  path?: ReadonlyArray<string | number>;
  extensions?: {
    /** BAD_USER_INPUT, NOT_FOUND, CONFLICT, UNAUTHENTICATED, FORBIDDEN, UNAVAILABLE, ... */
    code?: string;
    [key: string]: unknown;
  };
}

/** The server answered with GraphQL errors (or not with GraphQL at all). */
export class VectorqlError extends Error {
  readonly errors: readonly GraphQLErrorEntry[];
  readonly status: number;

  constructor(errors: readonly GraphQLErrorEntry[], status: number) {
    super(errors.map((e) => (e.extensions?.code ? `${e.extensions.code}: ` : "") + e.message).join("; "));
    this.name = "VectorqlError";
    this.errors = errors;
    this.status = status;
  }

  /** The first error's `extensions.code`, if any. */
  get code(): string | undefined {
    return this.errors[0]?.extensions?.code;
  }
}

interface GraphQLResponse<TResult> {
  data?: TResult | null;
  errors?: GraphQLErrorEntry[];
}

export class VectorqlClient {
  readonly #options: ClientOptions;

  constructor(options: ClientOptions) {
    this.#options = options;
  }

  /** Run any generated operation: its variables and result types come with it. */
  async request<TResult, TVariables>(
    operation: Operation<TResult, TVariables>,
    variables: TVariables,
  ): Promise<TResult> {
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      Accept: "application/graphql-response+json, application/json",
    };
    if (this.#options.apiKey) headers["Authorization"] = `Bearer ${this.#options.apiKey}`;
    const send = this.#options.fetch ?? fetch;
    const response = await send(this.#options.endpoint, {
      method: "POST",
      headers,
      body: JSON.stringify({ query: operation, variables }),
    });
    let body: GraphQLResponse<TResult>;
    try {
      body = (await response.json()) as GraphQLResponse<TResult>;
    } catch {
      throw new VectorqlError([{ message: `HTTP ${response.status} without a GraphQL body` }], response.status);
    }
    if (body.errors?.length) throw new VectorqlError(body.errors, response.status);
    if (body.data == null) throw new VectorqlError([{ message: "no data in the response" }], response.status);
    return body.data;
  }

  async createCollection(input: CreateCollectionInput): Promise<CreateCollectionMutation["createCollection"]> {
    return (await this.request(CreateCollectionDocument, { input })).createCollection;
  }

  /** Insert or replace records by id; `atomic: false` writes the valid ones and lists the rest. */
  async upsertRecords(
    collection: string,
    records: RecordInput[],
    atomic = true,
  ): Promise<UpsertRecordsMutation["upsertRecords"]> {
    return (await this.request(UpsertRecordsDocument, { collection, records, atomic })).upsertRecords;
  }

  async search(variables: SearchQueryVariables): Promise<SearchQuery["search"]> {
    return (await this.request(SearchDocument, variables)).search;
  }

  async recordsPage(variables: RecordsPageQueryVariables): Promise<RecordsPageQuery["records"]> {
    return (await this.request(RecordsPageDocument, variables)).records;
  }

  /** Every record matching `where`, page by page (keyset cursor). */
  async *records(
    collection: string,
    where?: Filter,
    pageSize = 100,
  ): AsyncGenerator<RecordsPageQuery["records"]["edges"][number]["node"]> {
    let after: string | null = null;
    for (;;) {
      const page: RecordsPageQuery["records"] = await this.recordsPage({
        collection,
        where: where ?? null,
        first: pageSize,
        after,
      });
      for (const edge of page.edges) yield edge.node;
      if (!page.pageInfo.hasNextPage) return;
      after = page.pageInfo.endCursor;
    }
  }
}
