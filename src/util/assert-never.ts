/** Exhaustiveness check for a discriminated union: a value of type `never` reached at run time. */
export function assertNever(x: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(x)}`);
}
