import { type ArgumentMetadata, BadRequestException, StandardSchemaValidationPipe } from '@nestjs/common';

/** A Standard Schema issue, plus what Zod adds to an unknown-keys one. */
interface Issue {
  readonly message: string;
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
  readonly code?: unknown;
  readonly keys?: unknown;
}

/** Stands for "the validated value itself" in a message, until transform() knows its name. */
const ROOT = '\u0000root';

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
      return await super.transform(value, metadata);
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
