import { type ArgumentMetadata, BadRequestException } from '@nestjs/common';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { SchemaValidationPipe } from '../../src/common/validation.pipe.js';
import { planSchema } from '../../src/rollouts/rollout.plan.js';
import { asOfQuery, listQuery } from '../../src/rollouts/rollouts.dto.js';
import { loadScenarios } from '../support/scenarios.js';

/** The pipe as it was before Zod compiled the schemas: each schema's own parser. */
class RuntimeParserPipe extends SchemaValidationPipe {
  protected override validate<T = unknown>(
    value: unknown,
    schema: StandardSchemaV1,
    options?: Record<string, unknown>,
  ): Promise<StandardSchemaV1.Result<T>> | StandardSchemaV1.Result<T> {
    return schema['~standard'].validate(value, options) as StandardSchemaV1.Result<T>;
  }
}

/** What a client gets back: the value the handler sees, or the 400's body. */
async function answer(
  pipe: SchemaValidationPipe,
  value: unknown,
  metadata: ArgumentMetadata,
): Promise<unknown> {
  try {
    return { value: await pipe.transform(structuredClone(value), metadata) };
  } catch (err) {
    if (err instanceof BadRequestException) return { refused: err.getResponse() };
    throw err;
  }
}

/** A copy of `value` with the member at a path (indices into each level's keys) replaced, or removed. */
function mutate(value: unknown, path: number[], replacement: unknown, remove: boolean): unknown {
  if (typeof value !== 'object' || value === null || path.length === 0) return replacement;
  const copy = (Array.isArray(value) ? [...value] : { ...value }) as Record<string, unknown>;
  const keys = Object.keys(copy);
  if (keys.length === 0) return replacement;
  const key = keys[(path[0] as number) % keys.length] as string;
  if (remove && path.length === 1 && !Array.isArray(copy)) delete copy[key];
  else copy[key] = mutate(copy[key], path.slice(1), replacement, remove);
  return copy;
}

describe('SchemaValidationPipe with compiled schemas', () => {
  const compiledPipe = new SchemaValidationPipe();
  const runtimePipe = new RuntimeParserPipe();
  const body: ArgumentMetadata = { type: 'body', schema: planSchema };
  const plans = loadScenarios().map((s) => s.calls[0]?.body as Record<string, unknown>);

  it('has a compiled validator for the plan and the queries below, not their parser again', () => {
    // z.compile hands back a schema it cannot compile unchanged; strict, it says so instead.
    for (const schema of [planSchema, listQuery, asOfQuery])
      expect(() => z.compile(schema, { strict: true })).not.toThrow();
  });

  it('answers every scenario plan, and every plan broken anywhere, as the schema own parser does', async () => {
    expect(plans.length).toBeGreaterThan(3);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...plans),
        fc.array(fc.nat(20), { minLength: 1, maxLength: 4 }),
        fc.jsonValue({ maxDepth: 2 }),
        fc.boolean(),
        async (plan, path, replacement, remove) => {
          const broken = mutate(plan, path, replacement, remove);
          const runtime = await answer(runtimePipe, broken, body);
          expect(await answer(compiledPipe, broken, body)).toEqual(runtime);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('gives a valid plan the same parsed value, and an unknown field the same error', async () => {
    for (const plan of plans) {
      const ok = await answer(compiledPipe, plan, body);
      expect(ok).toHaveProperty('value');
      expect(ok).toEqual(await answer(runtimePipe, plan, body));
    }
    const refused = await answer(compiledPipe, { ...plans[0], colour: 'blue' }, body);
    expect(refused).toMatchObject({ refused: { message: ['colour: is not a known field'] } });
  });

  it('answers queries with defaults, coercions, refinements and transforms as their own parsers do', async () => {
    const cases: [StandardSchemaV1, Record<string, string>][] = [
      [listQuery, {}],
      [listQuery, { limit: '5', status: 'planned', product: 'identity' }],
      [listQuery, { limit: 'x' }],
      [listQuery, { limit: '500', q: '   ' }],
      [listQuery, { extra: '1' }],
      [asOfQuery, { asOf: '42' }],
      [asOfQuery, { asOf: '2026-11-28T04:00:00Z' }],
      [asOfQuery, { asOf: 'yesterday' }],
    ];
    for (const [schema, q] of cases) {
      const query: ArgumentMetadata = { type: 'query', schema };
      expect(await answer(compiledPipe, q, query)).toEqual(await answer(runtimePipe, q, query));
    }
  });
});
