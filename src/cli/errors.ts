/** An error the CLI prints as one line (or a few, for config problems) and exits with. */
export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}
