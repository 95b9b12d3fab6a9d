/** A value of the `JSON` scalar: anything JSON can hold. */
export type JSONValue = string | number | boolean | null | JSONValue[] | { [key: string]: JSONValue };
