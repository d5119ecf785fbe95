/**
 * The http-01 side of an order: a place to make key authorizations visible
 * while the CA validates. The token store implements it, and the
 * ChallengeSolver interface (solver.ts) the ACME engine uses on top of it.
 */
export interface ChallengePublisher {
  publish(token: string, keyAuthorization: string): Promise<void>;
  withdraw(token: string): Promise<void>;
  /** Resolves once the CA has fetched every token, or after timeoutMs. */
  waitForFetches?(tokens: string[], timeoutMs: number): Promise<void>;
}
