/**
 * How an order proves control of its names: one solver per challenge type.
 * The ACME engine asks the solver to present every open authorization's
 * answer, waits for ready() (dns-01: the records are visible on the
 * authoritative servers), tells the CA to validate, and cleans every answer
 * up when the order ends, however it ends.
 */
export type ChallengeType = 'http-01' | 'dns-01';

export interface ChallengeAnswer {
  /** The authorization's identifier, without "*." (a wildcard's TXT record is the base name's). */
  identifier: string;
  wildcard: boolean;
  token: string;
  /** What to present: http-01 the key authorization; dns-01 its SHA-256 digest, the TXT value (acme-client computes it). */
  keyAuthorization: string;
}

export interface ChallengeSolver {
  readonly type: ChallengeType;
  present(answer: ChallengeAnswer): Promise<void>;
  /** After every answer of an order is presented, before the CA is told to validate; resolves with the ms waited. */
  ready?(answers: ChallengeAnswer[], signal?: AbortSignal): Promise<number>;
  /** Never rejects for a fault the order should not fail for; logs it instead. */
  cleanUp(answer: ChallengeAnswer): Promise<void>;
  /** Resolves once the CA has fetched every token, or after timeoutMs (http-01). */
  waitForFetches?(tokens: string[], timeoutMs: number): Promise<void>;
}
