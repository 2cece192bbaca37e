import { type ArgumentMetadata, BadRequestException, StandardSchemaValidationPipe } from '@nestjs/common';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import * as z from 'zod';
import { isPlainParsedBody, isReservedKey, MAX_VALUE_DEPTH, unstorableText } from './strict-json.js';

/** A Standard Schema issue, plus what Zod adds to an unknown-keys one. */
interface Issue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
  readonly code?: unknown;
  readonly keys?: unknown;
}

/**
 * Each route's schema as Zod compiles it (`z.compile`), made on the schema's first use: a
 * generated validator for valid input; for invalid input, after it, the same parser as before,
 * so the same output and the same issues. A plan validated in 40 µs compiled takes 10
 * (docs/benchmarks.md, session 17). Refinements and transforms may run twice on invalid input
 * (once in each), so they must stay free of side effects, as all of ours are. A schema Zod cannot
 * compile is handed back as it is, and keeps its parser.
 */
const compiled = new WeakMap<StandardSchemaV1, StandardSchemaV1>();

function compiledOf(schema: StandardSchemaV1): StandardSchemaV1 {
  let fast = compiled.get(schema);
  if (fast === undefined) {
    fast = schema instanceof z.ZodType ? z.compile(schema) : schema;
    compiled.set(schema, fast);
  }
  return fast;
}

/** Stands for "the validated value itself" in a message, until transform() knows its name. */
const ROOT = '\u0000root';

/**
 * Keys no input may carry. Nest's own pipe deletes them silently, so a readback's free-form
 * `observed` value with a `constructor` key was recorded without it. Refused here instead, with
 * the field named, so the client learns that it was not recorded.
 */
const RESERVED_KEY = 'is a reserved key (__proto__, constructor, prototype): rename it';

/** A value met by the walk below: its key and its parent's node, so its path is built only when needed. */
interface Node {
  readonly value: unknown;
  readonly key: string | undefined;
  readonly parent: Node | undefined;
  readonly depth: number;
}

function pathOf(node: Node | undefined): string[] {
  const path: string[] = [];
  for (let n = node; n?.key !== undefined; n = n.parent) path.push(n.key);
  return path.reverse();
}

/** What the walk below found: each as a "path: message" string. */
interface Unstorable {
  /** Refused before the schema sees the value: it could not hold it, or could not cope. */
  problem?: string;
  /** The first reserved key, refused once the schema has had its say on the value's shape. */
  reservedKey?: string;
}

/**
 * What no schema may be given: a value nested deeper than MAX_VALUE_DEPTH (a recursive schema
 * such as z.json() overflows the call stack on 10,000 levels, which was a 500), or a string or
 * key with NUL or a lone surrogate (Postgres text and jsonb cannot hold them: in a query filter
 * that was a 500, in a key name too); and the first reserved key. Walks with its own stack, never
 * by recursion, so any depth is safe here. Paths are built only for the answer, never per value.
 */
function unstorable(value: unknown): Unstorable {
  const at = (path: string[]) => (path.length > 0 ? path.join('.') : ROOT);
  const stack: Node[] = [{ value, key: undefined, parent: undefined, depth: 0 }];
  let reservedKey: string | undefined;
  for (let next = stack.pop(); next; next = stack.pop()) {
    const v = next.value;
    if (next.depth > MAX_VALUE_DEPTH) {
      // Named after the top-level field it is in (the whole path would be 65 segments long).
      const field = Array.isArray(value) ? [] : pathOf(next).slice(0, 1);
      return { problem: `${at(field)}: must not nest deeper than ${MAX_VALUE_DEPTH} levels` };
    }
    if (typeof v === 'string') {
      const problem = unstorableText(v);
      if (problem) return { problem: `${at(pathOf(next))}: ${problem}` };
    } else if (typeof v === 'object' && v !== null) {
      const keys = Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i] as string;
        const child: Node = {
          value: (v as Record<string, unknown>)[key],
          key,
          parent: next,
          depth: next.depth + 1,
        };
        if (reservedKey === undefined && isReservedKey(key))
          reservedKey = `${at(pathOf(child))}: ${RESERVED_KEY}`;
        const problem = unstorableText(key);
        if (problem) return { problem: `${at(pathOf(child))}: ${problem} (in the key)` };
        stack.push(child);
      }
    }
  }
  return { reservedKey };
}

/**
 * The Standard Schema pipe, except that every issue names its field:
 * - an unknown field is named as a field. Zod reports the unknown keys of a strict object as one
 *   issue at the object's own path (`Unrecognized key: "foo"`), which reached the client as
 *   `errors: [{ field: 'Unrecognized key' }]`; here each key becomes an issue of its own at
 *   `<path>.<key>`, so `errors[].field` names it;
 * - an issue about the whole value (a path parameter that is not a UUID, a body that is an array)
 *   has no path: it is named after the parameter (`id`, `stepId`), or `(body)` / `(query)`.
 *   Without this the problem filter read the message's own "Invalid input: …" as a field name.
 */
export class SchemaValidationPipe extends StandardSchemaValidationPipe {
  override async transform<T = unknown>(value: T, metadata: ArgumentMetadata): Promise<T> {
    try {
      // A body the JSON parser's scan found plain holds nothing the walk would refuse (strict-json.ts).
      const walk =
        metadata.schema &&
        metadata.type !== 'custom' &&
        !(metadata.type === 'body' && isPlainParsedBody(value));
      const found = walk ? unstorable(value) : {};
      if (found.problem) throw new BadRequestException([found.problem]);
      const result = await super.transform(value, metadata);
      // After the schema: a body of the wrong shape is named as such (`(body)`, an unknown field)
      // before a reserved key inside it; one the schema accepts (in free-form JSON) is refused here.
      if (found.reservedKey) throw new BadRequestException([found.reservedKey]);
      return result;
    } catch (err) {
      if (!(err instanceof BadRequestException)) throw err;
      const messages = (err.getResponse() as { message?: unknown }).message;
      if (!Array.isArray(messages)) throw err;
      const root = metadata.data ?? `(${metadata.type})`;
      throw new BadRequestException(
        messages.map((m) => (String(m).startsWith(ROOT) ? `${root}${String(m).slice(ROOT.length)}` : m)),
      );
    }
  }

  protected override validate<T = unknown>(
    value: unknown,
    schema: StandardSchemaV1,
    options?: Record<string, unknown>,
  ): Promise<StandardSchemaV1.Result<T>> | StandardSchemaV1.Result<T> {
    return super.validate(value, compiledOf(schema), options);
  }

  /**
   * Nest's pipe deletes `__proto__`, `constructor` and `prototype` keys here, walking the value
   * again. It is called only for a value with a schema, where transform() above refuses any such
   * key once the schema has run (or the JSON parser's scan found none), so none gets through.
   */
  protected override stripProtoKeys(_value: unknown): void {}

  protected override formatIssueMessages(issues: readonly Issue[]): string[] {
    return super.formatIssueMessages(
      issues
        .flatMap((issue): Issue[] =>
          issue.code === 'unrecognized_keys' && Array.isArray(issue.keys) && issue.keys.length > 0
            ? issue.keys.map((key) => ({
                message: 'is not a known field',
                path: [...(issue.path ?? []), String(key)],
              }))
            : [issue],
        )
        .map((issue) => (issue.path?.length ? issue : { ...issue, path: [ROOT] })),
    );
  }
}
