// The problems check-config reports for a config text, one line each; fails
// the test when the text is accepted.
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/config/load.js';

export function configProblems(text: string): string[] {
  try {
    parseConfig(text, 'acmed.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.lines();
  }
  return assert.fail('accepted');
}
