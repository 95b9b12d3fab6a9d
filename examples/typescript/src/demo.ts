// Create a collection, upsert three records, search with a metadata filter, page through records.
//   npm run build && node dist/demo.js http://127.0.0.1:8000/graphql [collection] [api key]
import { VectorqlClient, VectorqlError } from "./client.js";

async function main(): Promise<void> {
  const [endpoint = "http://127.0.0.1:8000/graphql", collection = "ts_demo", apiKey] = process.argv.slice(2);
  const client = new VectorqlClient(apiKey ? { endpoint, apiKey } : { endpoint });

  try {
    await client.createCollection({
      name: collection,
      dimension: 4,
      metric: "COSINE",
      fields: [
        { name: "category", type: "STRING" },
        { name: "year", type: "INT" },
      ],
    });
  } catch (error) {
    if (!(error instanceof VectorqlError && error.code === "CONFLICT")) throw error;
  }

  const written = await client.upsertRecords(collection, [
    { id: "a1", vector: [0.1, 0.2, 0.3, 0.4], metadata: { category: "news", year: 2024 }, text: "fresh news" },
    { id: "a2", vector: [0.1, 0.2, 0.3, 0.5], metadata: { category: "news", year: 2019 }, text: "old news" },
    { id: "a3", vector: [0.4, 0.3, 0.2, 0.1], metadata: { category: "sport", year: 2025 }, text: "a match" },
  ]);

  const result = await client.search({
    collection,
    vector: [0.1, 0.2, 0.3, 0.4],
    topK: 5,
    where: { and: [{ field: "category", eq: "news" }, { field: "year", gte: 2020 }] },
  });

  const ids: string[] = [];
  for await (const record of client.records(collection, undefined, 2)) ids.push(record.id);

  console.log(
    JSON.stringify({
      upserted: written.upserted,
      hits: result.hits.map((hit) => ({ id: hit.id, score: hit.score, text: hit.record?.text ?? null })),
      records: ids.length,
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
