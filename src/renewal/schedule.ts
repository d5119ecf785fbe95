/**
 * When the daemon looks at its certificates. Once a day, at a time of day
 * drawn from a hash of a per-instance seed (host name, instance id), so a
 * fleet of acmed instances spreads its renewals over the day instead of
 * hitting the CA at midnight together; and, for certificates that fall due
 * before the next daily run (6-day certificates, ARI windows, backoffs that
 * end), one extra wake-up at the earliest such time.
 */
import { createHash } from 'node:crypto';

export interface TimeOfDay {
  hour: number;
  minute: number;
}

const MINUTES_PER_DAY = 24 * 60;

/** A stable time of day for this seed: the same seed always gets the same minute. */
export function dailyMinuteFor(seed: string): TimeOfDay {
  const digest = createHash('sha256').update(seed, 'utf8').digest();
  const minuteOfDay = digest.readUInt32BE(0) % MINUTES_PER_DAY;
  return { hour: Math.floor(minuteOfDay / 60), minute: minuteOfDay % 60 };
}

/** dailyMinuteFor as a node-cron expression, "M H * * *" (local time unless cron is given a timezone). */
export function cronExpressionFor(seed: string): string {
  const { hour, minute } = dailyMinuteFor(seed);
  return `${minute} ${hour} * * *`;
}

/** The first local-time occurrence of `time` strictly after `now`: where the daily run falls next. */
export function nextDailyRun(time: TimeOfDay, now: Date): Date {
  const candidate = new Date(now.getFullYear(), now.getMonth(), now.getDate(), time.hour, time.minute, 0, 0);
  if (candidate.getTime() <= now.getTime()) {
    return new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, time.hour, time.minute, 0, 0);
  }
  return candidate;
}

/**
 * The earliest due time after `now` and before the next daily run, or null
 * when the daily run comes first. Times at or before `now` are ignored: they
 * are what the current run handles, and waking for them again would spin; a
 * host that could not be renewed now (backed off) should be passed with its
 * backoff's end instead.
 */
export function nextWake(dueTimes: Date[], nextDailyRun: Date, now: Date): Date | null {
  const after = now.getTime();
  const before = nextDailyRun.getTime();
  let earliest: number | null = null;
  for (const due of dueTimes) {
    const t = due.getTime();
    if (Number.isNaN(t) || t <= after || t >= before) continue;
    if (earliest === null || t < earliest) earliest = t;
  }
  return earliest === null ? null : new Date(earliest);
}
