/**
 * The base of every error acmed raises on purpose. It carries what each
 * caller needs so none has to parse a message: `code` for programs to branch
 * on, `status` for the admin API's answer, `apiBody()` for its JSON and
 * `headers()` for what goes beside it (Retry-After). The admin API's error
 * translation is then a few lines, and a new error type needs no edit there.
 */
export class AcmedError extends Error {
  readonly code: string = 'ACMED_ERROR';
  /** The admin API's HTTP status for this error. */
  get status(): number {
    return 500;
  }

  /** The body's `kind`, a short word a client can branch on; none by default. */
  get kind(): string | undefined {
    return undefined;
  }

  /** The admin API's JSON body: `message`, `kind`, and whatever the type adds. */
  apiBody(): Record<string, unknown> {
    return { message: this.message, ...(this.kind ? { kind: this.kind } : {}) };
  }

  headers(): Record<string, string> {
    return {};
  }
}

/** Seconds until an ISO time, at least 1: a Retry-After value. */
export function retryAfterSeconds(until: string | null | undefined, now = Date.now()): number {
  return Math.max(1, Math.ceil((Date.parse(until ?? '') - now) / 1000) || 1);
}
