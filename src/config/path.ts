/** Where the config file is: --config, else ACMED_CONFIG, else the packaged default. */
export const DEFAULT_CONFIG_PATH = '/etc/acmed/acmed.yaml';

export function resolveConfigPath(flag?: string): string {
  return flag ?? process.env.ACMED_CONFIG ?? DEFAULT_CONFIG_PATH;
}
