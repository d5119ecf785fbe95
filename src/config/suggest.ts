/** "did you mean" for a misspelt config key: the closest key the schema knows at that place. */
import { closest, distance } from 'fastest-levenshtein';
import { z } from 'zod';
import { configSchema } from './schema.js';

/** The keys an object in the schema accepts at a path of the config (array indexes skipped). */
export function knownKeysAt(path: PropertyKey[]): string[] {
  let schema: z.ZodType | undefined = unwrap(configSchema);
  for (const segment of path) {
    if (schema instanceof z.ZodArray) schema = unwrap(schema.element as z.ZodType);
    if (typeof segment === 'number') continue;
    schema = schema instanceof z.ZodObject ? unwrap(schema.shape[segment as string] as z.ZodType | undefined) : undefined;
  }
  if (schema instanceof z.ZodArray) schema = unwrap(schema.element as z.ZodType);
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

/** ' (did you mean "x"?)' when a known key is a few edits away, else ''. */
export function suggestKey(key: string, known: string[]): string {
  if (known.length === 0) return '';
  const best = closest(key, known);
  // Two edits (a swap is two), or a third of a long key: "hots" → "host", but not "zzz" → "ssl".
  return distance(key, best) <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

function unwrap(schema: z.ZodType | undefined): z.ZodType | undefined {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodDefault || current instanceof z.ZodNullable || current instanceof z.ZodOptional) {
      current = current.unwrap() as z.ZodType;
    } else if (current instanceof z.ZodPipe) {
      current = current.in as z.ZodType;
    } else {
      return current;
    }
  }
}
