import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { MongoError, MongoNetworkError, MongoNetworkTimeoutError, MongoServerError } from 'mongodb';
import {
  type Attempts,
  BrokerUnavailable,
  backoff,
  classify,
  count,
  type Fault,
  nextStep,
  RETRY_POLICY,
} from '../../runtime/engine/faults.js';
import { MAX_EVENT_BYTES, MAX_EVENT_DEPTH, nestedDeeperThan, parseEventBody } from '../../runtime/event/canopsis-event.js';
import { mongoUnavailable } from '../../runtime/store/mongodb.js';
import { sqliteUnavailable } from '../../runtime/store/sqlite.js';
import { StoreError, StoreUnavailable } from '../../runtime/store/types.js';
import { RejectedEvent } from '../../runtime/tasks/types.js';

/*
 * The fault policy by tables: which errors are the event's fault, which
 * are the store's or the broker's, and what happens next to the event.
 */

const sqlite = (code: string) => new Database.SqliteError(`sqlite says ${code}`, code);
const fsError = (code: string) => Object.assign(new Error(`${code}: denied`), { code });

test('what the SQLite adapter counts as "the store cannot answer now"', () => {
  const table: Array<[unknown, boolean]> = [
    [sqlite('SQLITE_BUSY'), true],
    [sqlite('SQLITE_BUSY_SNAPSHOT'), true],
    [sqlite('SQLITE_LOCKED'), true],
    [sqlite('SQLITE_READONLY'), true],
    [sqlite('SQLITE_READONLY_DBMOVED'), true],
    [sqlite('SQLITE_CANTOPEN'), true],
    [sqlite('SQLITE_IOERR_WRITE'), true],
    [sqlite('SQLITE_FULL'), true],
    [sqlite('SQLITE_PROTOCOL'), true],
    [sqlite('SQLITE_CONSTRAINT_PRIMARYKEY'), false],
    [sqlite('SQLITE_ERROR'), false],
    [sqlite('SQLITE_MISMATCH'), false],
    // SQLITE_BUSYX is no code of SQLite: prefixes count only up to an underscore.
    [sqlite('SQLITE_BUSYX'), false],
    [fsError('EACCES'), true],
    [fsError('EROFS'), true],
    [fsError('ENOSPC'), true],
    [fsError('ENOENT'), false],
    [new Error('SQLITE_BUSY in the text only'), false],
    [new TypeError('x is undefined'), false],
  ];
  for (const [e, expected] of table)
    assert.equal(sqliteUnavailable(e), expected, `${(e as { code?: string }).code ?? (e as Error).message}`);
});

test('what the MongoDB adapter counts as "the store cannot answer now"', () => {
  const server = (code: number, labels: string[] = []) =>
    new MongoServerError({ errmsg: `server says ${code}`, code, errorLabels: labels });
  const table: Array<[string, unknown, boolean]> = [
    ['network error', new MongoNetworkError('connection reset'), true],
    ['network timeout', new MongoNetworkTimeoutError('timed out'), true],
    ['NotWritablePrimary', server(10107), true],
    ['PrimarySteppedDown', server(189), true],
    ['ShutdownInProgress', server(91), true],
    ['OutOfDiskSpace', server(14031), true],
    ['a retryable write label', server(1, ['RetryableWriteError']), true],
    ['duplicate key', server(11000), false],
    ['bad query', server(2), false],
    ['a driver error without a label', new MongoError('something else'), false],
    ['a plain error', new Error('not found'), false],
  ];
  for (const [what, e, expected] of table) assert.equal(mongoUnavailable(e), expected, what);
});

test('classify: bad input, transient (marked by the adapters, found through causes) or failure', () => {
  const busy = new StoreUnavailable('canopsis.db: database is locked (SQLITE_BUSY)', { cause: sqlite('SQLITE_BUSY') });
  const table: Array<[string, unknown, Fault['kind']]> = [
    ['a task refusing the event', new RejectedEvent('missing field: component'), 'bad-input'],
    ['a refusal caused by the store is still a refusal', new RejectedEvent('cannot decide', { cause: busy }), 'bad-input'],
    ['the store busy', busy, 'transient'],
    ['a store error wrapped by a task', new Error('che: cannot save', { cause: busy }), 'transient'],
    ['the broker refused a publish', new BrokerUnavailable('nack'), 'transient'],
    ['a plugin error marked transient', Object.assign(new Error('upstream API down'), { transient: true }), 'transient'],
    ['a store error that is not a fault of the store (bad field)', new StoreError('bad field path "a..b"'), 'failure'],
    ['a bug in a task', new TypeError("Cannot read properties of undefined (reading 'x')"), 'failure'],
    ['a stack overflow', new RangeError('Maximum call stack size exceeded'), 'failure'],
    ['a raw SQLite error nobody marked', sqlite('SQLITE_BUSY'), 'failure'],
    ['not even an Error', 'a string', 'failure'],
  ];
  for (const [what, e, kind] of table) assert.equal(classify(e).kind, kind, what);
  assert.equal(classify(new Error('wrapper', { cause: busy })).message, busy.message, 'the transient cause is what is reported');
});

test('nextStep: dead-letter bad input, retry transient faults forever with a capped backoff, a failure 3 times', () => {
  const bad: Fault = { kind: 'bad-input', message: 'not JSON: Unexpected token' };
  const down: Fault = { kind: 'transient', message: 'database is locked' };
  const bug: Fault = { kind: 'failure', message: 'boom' };
  const task = 'test.task.event_processing';
  let a: Attempts = { transient: 0, failures: 0 };
  assert.deepEqual(nextStep(bad, count(a, bad), task), { action: 'dead-letter', reason: 'not JSON: Unexpected token' });

  const delays: number[] = [];
  for (let i = 0; i < 1000; i++) {
    a = count(a, down);
    const step = nextStep(down, a, task);
    assert.equal(step.action, 'retry', `a transient fault is never dead-lettered (attempt ${a.transient})`);
    if (step.action === 'retry') {
      assert.equal(step.pause, true);
      delays.push(step.afterMs);
    }
  }
  assert.deepEqual(delays.slice(0, 8), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  assert.equal(delays.at(-1), RETRY_POLICY.transient.maxMs);

  let b: Attempts = { transient: 0, failures: 0 };
  const steps = [1, 2, 3].map(() => {
    b = count(b, bug);
    return nextStep(bug, b, task);
  });
  assert.deepEqual(steps.slice(0, 2), [
    { action: 'retry', afterMs: 100, pause: false },
    { action: 'retry', afterMs: 200, pause: false },
  ]);
  assert.deepEqual(steps[2], {
    action: 'dead-letter',
    reason: 'test.task.event_processing failed: boom (failed 3 times; this is the last error)',
  });
  // Transient faults between failures do not use up the failure attempts.
  const mixed = count(count(count({ transient: 0, failures: 0 }, bug), down), down);
  assert.equal(nextStep(bug, count(mixed, bug), task).action, 'retry');
  assert.equal(backoff({ initialMs: 100, maxMs: 5000 }, 1e6), 5000, 'no overflow on a long episode');
});

test('parseEventBody: too big, nested too deep (counted without recursion, strings ignored), not JSON', () => {
  const nest = (n: number) => Buffer.from(`{"a":${'['.repeat(n - 1)}${']'.repeat(n - 1)}}`);
  assert.equal(nestedDeeperThan(nest(MAX_EVENT_DEPTH), MAX_EVENT_DEPTH), false);
  assert.equal(nestedDeeperThan(nest(MAX_EVENT_DEPTH + 1), MAX_EVENT_DEPTH), true);
  assert.equal(nestedDeeperThan(nest(100_000), MAX_EVENT_DEPTH), true);
  assert.equal(
    nestedDeeperThan(Buffer.from(JSON.stringify({ output: '['.repeat(500), more: '{"\\"[[[' })), 2),
    false,
    'brackets inside strings, escaped quotes included, do not count',
  );
  assert.equal(
    nestedDeeperThan(Buffer.from(JSON.stringify({ output: 'é€🙂'.repeat(50), p: [[[{}]]] })), 4),
    true,
    'multi-byte text does not confuse the count',
  );
  // [ { [ { [ ] } ] } , [ ] ]: five levels at the deepest.
  assert.equal(nestedDeeperThan(Buffer.from('[{"a":[1,2,{"b":[]}]},[]]'), 5), false);
  assert.equal(nestedDeeperThan(Buffer.from('[{"a":[1,2,{"b":[]}]},[]]'), 4), true);

  const table: Array<[string, Buffer, RegExp | unknown]> = [
    ['an event', Buffer.from('{"component":"h","state":1}'), { component: 'h', state: 1 }],
    ['too deep', nest(100_000), /^event nested too deep: more than 64 levels of arrays or objects$/],
    ['too big', Buffer.alloc(MAX_EVENT_BYTES + 1, 0x20), /^event of 1048577 bytes exceeds the 1048576-byte event limit$/],
    ['not JSON', Buffer.from('{not json'), /^not JSON: /],
  ];
  for (const [what, body, expected] of table) {
    const r = parseEventBody(body);
    if (expected instanceof RegExp) {
      assert.equal(r.ok, false, what);
      if (!r.ok) assert.match(r.reason, expected, what);
    } else assert.deepEqual(r, { ok: true, value: expected }, what);
  }
});
