/**
 * Runs the deploy hook for each new certificate, as a listener of the
 * issuer's outcome events, and keeps each run's result for whoever waits on
 * that job (`acmed issue` reports it).
 */
import { EventEmitter } from 'node:events';
import type { IssueOutcome, JobEvent } from '../renewal/job.js';
import type { DeployHookRun } from './deploy-hook.js';

export class DeployHooks extends EventEmitter<{ ran: [DeployHookRun] }> {
  private readonly results = new WeakMap<IssueOutcome, Promise<DeployHookRun | undefined>>();

  constructor(private readonly run: (outcome: IssueOutcome) => Promise<DeployHookRun | undefined>) {
    super();
  }

  readonly onEvent = (event: JobEvent): void => {
    if (event.type !== 'issued') return;
    const result = this.run(event.outcome).catch(() => undefined);
    this.results.set(event.outcome, result);
    void result.then((run) => run && this.emit('ran', run));
  };

  /** The hook's result for a job that issued a certificate; undefined when none ran. */
  async resultOf(outcome: IssueOutcome): Promise<DeployHookRun | undefined> {
    return this.results.get(outcome);
  }
}
