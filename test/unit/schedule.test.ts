// The daily renewal run happens at a per-instance time of day, so a fleet
// does not hit the CA at once; that time must be stable (a restart or an
// upgrade must not move it) and spread over the day. nextWake adds one extra
// wake-up for certificates due before the next daily run (6-day certificates,
// ARI windows, ends of backoff).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cronExpressionFor, dailyMinuteFor, nextDailyRun, nextWake } from '../../src/renewal/schedule.js';

describe('dailyMinuteFor / cronExpressionFor', () => {
  test('pinned values: changing the hash would move every deployed instance', () => {
    assert.deepEqual(dailyMinuteFor('a.example.com'), { hour: 16, minute: 53 });
    assert.deepEqual(dailyMinuteFor('acmed-1'), { hour: 17, minute: 14 });
    assert.equal(cronExpressionFor('a.example.com'), '53 16 * * *');
  });

  test('same seed, same time; different seeds, different times', () => {
    assert.deepEqual(dailyMinuteFor('host-1.example.com'), dailyMinuteFor('host-1.example.com'));
    assert.notDeepEqual(dailyMinuteFor('host-1.example.com'), dailyMinuteFor('host-2.example.com'));
  });

  test('a fleet of 1000 spreads over every hour, none crowded', () => {
    const perHour = new Array<number>(24).fill(0);
    for (let i = 0; i < 1000; i++) {
      const { hour, minute } = dailyMinuteFor(`host-${i}.example.com`);
      assert.ok(Number.isInteger(hour) && hour >= 0 && hour < 24, `hour ${hour}`);
      assert.ok(Number.isInteger(minute) && minute >= 0 && minute < 60, `minute ${minute}`);
      perHour[hour]++;
    }
    assert.ok(Math.min(...perHour) > 10, `sparse hour: ${perHour.join(',')}`);
    assert.ok(Math.max(...perHour) < 80, `crowded hour: ${perHour.join(',')}`);
  });

  test('the cron expression is "M H * * *" with the same numbers', () => {
    for (const seed of ['', 'x', 'acmed.example.net', 'ünïcode']) {
      const { hour, minute } = dailyMinuteFor(seed);
      assert.equal(cronExpressionFor(seed), `${minute} ${hour} * * *`);
      assert.match(cronExpressionFor(seed), /^([0-9]|[1-5][0-9]) ([0-9]|1[0-9]|2[0-3]) \* \* \*$/);
    }
  });
});

describe('nextDailyRun (local time, like cron)', () => {
  const at = (d: number, h: number, m: number, s = 0) => new Date(2025, 2, d, h, m, s);
  test('later today, or tomorrow once the minute has come', () => {
    assert.equal(nextDailyRun({ hour: 16, minute: 53 }, at(10, 9, 0)).getTime(), at(10, 16, 53).getTime());
    assert.equal(nextDailyRun({ hour: 16, minute: 53 }, at(10, 16, 53)).getTime(), at(11, 16, 53).getTime());
    assert.equal(nextDailyRun({ hour: 16, minute: 53 }, at(10, 16, 53, 1)).getTime(), at(11, 16, 53).getTime());
    assert.equal(nextDailyRun({ hour: 0, minute: 0 }, at(31, 23, 59)).getTime(), new Date(2025, 3, 1, 0, 0).getTime());
  });
});

describe('nextWake', () => {
  const now = new Date('2025-03-10T12:00:00Z');
  const daily = new Date('2025-03-11T03:00:00Z');
  const t = (iso: string) => new Date(iso);

  const cases: [string, Date[], string | null][] = [
    ['nothing due', [], null],
    ['all due after the daily run', [t('2025-03-20T00:00:00Z'), t('2025-04-01T00:00:00Z')], null],
    ['due exactly at the daily run: the run covers it', [t('2025-03-11T03:00:00Z')], null],
    ['one due before the run', [t('2025-03-20T00:00:00Z'), t('2025-03-10T18:30:00Z')], '2025-03-10T18:30:00.000Z'],
    ['earliest of several', [t('2025-03-10T20:00:00Z'), t('2025-03-10T13:00:00Z'), t('2025-03-11T01:00:00Z')], '2025-03-10T13:00:00.000Z'],
    ['past and present times are ignored (this run handles them)', [t('2025-03-01T00:00:00Z'), now, t('2025-03-10T15:00:00Z')], '2025-03-10T15:00:00.000Z'],
    ['only past times', [t('2025-03-01T00:00:00Z')], null],
    ['invalid dates are ignored', [new Date('junk'), t('2025-03-10T12:00:01Z')], '2025-03-10T12:00:01.000Z'],
  ];
  for (const [name, due, expected] of cases) {
    test(name, () => {
      assert.equal(nextWake(due, daily, now)?.toISOString() ?? null, expected);
    });
  }

  test('does not reorder or change its input', () => {
    const due = [t('2025-03-10T20:00:00Z'), t('2025-03-10T13:00:00Z')];
    const copy = due.map((d) => d.getTime());
    nextWake(due, daily, now);
    assert.deepEqual(due.map((d) => d.getTime()), copy);
  });
});
