/** Where the config file is: --config, else ACMED_CONFIG, else the packaged default. */
export const DEFAULT_CONFIG_PATH = '/etc/acmed/acmed.yaml';

export function resolveConfigPath(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? (env.ACMED_CONFIG || undefined) ?? DEFAULT_CONFIG_PATH;
}
