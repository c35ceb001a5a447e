import pg from 'pg';

/*
 * A fresh PostgreSQL database for one test file, on the server this machine
 * runs (127.0.0.1:5432, trust authentication, user postgres) unless
 * CANOPSIS_TEST_POSTGRESQL_URL names another. Its default collation is
 * ICU's en-US where the server has ICU: there 'B' sorts after 'a', so a
 * query that forgot COLLATE "C" shows.
 */

export const SERVER_URL = process.env.CANOPSIS_TEST_POSTGRESQL_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  name: string;
  url: string;
  drop: () => Promise<void>;
}

/** The server URL with another database. */
export const urlOf = (database: string) => {
  const u = new URL(SERVER_URL);
  u.pathname = `/${database}`;
  return u.toString();
};

async function admin<R>(op: (c: pg.Client) => Promise<R>): Promise<R> {
  const c = new pg.Client({ connectionString: SERVER_URL });
  await c.connect();
  try {
    return await op(c);
  } finally {
    await c.end();
  }
}

let made = 0;

export async function createTestDatabase(tag = 'store'): Promise<TestDatabase> {
  const name = `canopsis_test_${tag}_${process.pid}_${Date.now()}_${made++}`;
  await admin(async (c) => {
    try {
      await c.query(`CREATE DATABASE ${name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'`);
    } catch {
      await c.query(`CREATE DATABASE ${name}`);
    }
  });
  return {
    name,
    url: urlOf(name),
    drop: () => admin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))),
  };
}
