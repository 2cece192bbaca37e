import { execFile } from 'node:child_process';
import { access, chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../support/free-port.js';

const exec = promisify(execFile);

/** Scratch clusters live in `<tmpdir>/<prefix><run pid>-<random>`, so a later run can sweep them. */
export const CLUSTER_PREFIX = 'upgrade-ledger-fault-cluster-';

/**
 * A throwaway Postgres cluster of the same major version as the server under test: what a
 * logical restore "into a new cluster" restores into. Its transaction counter starts near zero,
 * as a new cluster's does. initdb refuses to run as root, so as root it runs as `postgres`.
 */
export interface ScratchCluster {
  port: number;
  /** A directory of the cluster's owner, for files it must read (a dump to restore). */
  root: string;
  /** A connection string for one of its databases. */
  url(database: string): string;
  /** Runs one of the cluster's binaries (pg_restore, createdb …) as the cluster's owner. */
  bin(name: string, args: string[]): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
  /**
   * Stops the server as an operator would (`pg_ctl stop -m fast`: sessions are ended, no new
   * connection is accepted), keeping its data directory and port for `startServer`.
   */
  stopServer(): Promise<void>;
  /** Starts the server again on the same data directory and port (after `stopServer`). */
  startServer(): Promise<void>;
}

/** The directory of the server binaries for `major` (Debian layout), or PG_BINDIR. */
export async function binDir(major: number): Promise<string> {
  const dir = process.env.PG_BINDIR ?? `/usr/lib/postgresql/${major}/bin`;
  await access(path.join(dir, 'initdb'));
  return dir;
}

/**
 * A cluster in a new directory of its own, on a free port: `populate` fills its data directory
 * (initdb, or a base backup), then it is started. Stopped and removed by `stop`.
 */
async function scratchCluster(
  major: number,
  populate: (bin: ClusterBin, data: string) => Promise<unknown>,
): Promise<ScratchCluster> {
  const dir = await binDir(major);
  const run = process.env.UPGRADE_LEDGER_TEST_RUN ?? String(process.pid);
  const root = await mkdtemp(path.join(tmpdir(), `${CLUSTER_PREFIX}${run}-`));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number((await exec('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await exec('id', ['-g', 'postgres'])).stdout.trim());
    await chown(root, uid, gid);
  }
  const bin: ClusterBin = (name, args) =>
    asRoot
      ? exec('runuser', ['-u', 'postgres', '--', path.join(dir, name), ...args], { cwd: root })
      : exec(path.join(dir, name), args, { cwd: root });
  const data = path.join(root, 'data');
  const port = await freePort();
  let started = false;
  const startServer = () =>
    bin('pg_ctl', [
      '-D',
      data,
      '-l',
      path.join(root, 'server.log'),
      '-o',
      `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c fsync=off`,
      '-w',
      '-t',
      '120',
      'start',
    ]);
  const stop = async () => {
    if (started) await bin('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    started = false;
    await rm(root, { recursive: true, force: true });
  };
  try {
    await populate(bin, data);
    started = true;
    await startServer();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    port,
    root,
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    bin: (name, args) => bin(name, ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args]),
    stop,
    async stopServer() {
      await bin('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '120', 'stop']);
    },
    async startServer() {
      await startServer();
    },
  };
}

type ClusterBin = (name: string, args: string[]) => Promise<{ stdout: string; stderr: string }>;

export function startScratchCluster(major: number): Promise<ScratchCluster> {
  return scratchCluster(major, (bin, data) =>
    bin('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']),
  );
}

/**
 * Stops and removes the scratch clusters of runs that died before their afterAll (a killed
 * vitest): pg_ctl daemonizes the server, so nothing else would ever stop it.
 */
export async function sweepScratchClusters(alive: (pid: number) => boolean): Promise<void> {
  const names = await readdir(tmpdir()).catch(() => [] as string[]);
  for (const name of names) {
    const m = new RegExp(`^${CLUSTER_PREFIX}(\\d+)-`).exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const root = path.join(tmpdir(), name);
    const data = path.join(root, 'data');
    const pgCtl = (await readdir('/usr/lib/postgresql').catch(() => [] as string[]))
      .map((v) => `/usr/lib/postgresql/${v}/bin/pg_ctl`)
      .concat(process.env.PG_BINDIR ? [path.join(process.env.PG_BINDIR, 'pg_ctl')] : []);
    for (const bin of pgCtl) {
      const args = [bin, '-D', data, '-m', 'immediate', '-w', 'stop'];
      const stopped = await (process.getuid?.() === 0
        ? exec('runuser', ['-u', 'postgres', '--', ...args])
        : exec(args[0]!, args.slice(1))
      ).then(
        () => true,
        () => false,
      );
      if (stopped) break;
    }
    await rm(root, { recursive: true, force: true });
  }
}

/**
 * A physical backup of `source` (`pg_basebackup -X stream`, as its owner), started as a cluster
 * of its own on another port: what a restore from a base backup gives. The backup holds
 * everything committed before it ended, and the source's transaction counter.
 */
export function startClusterFromBaseBackup(source: ScratchCluster, major: number): Promise<ScratchCluster> {
  return scratchCluster(major, (bin, data) =>
    bin('pg_basebackup', [
      '-h',
      '127.0.0.1',
      '-p',
      String(source.port),
      '-U',
      'postgres',
      '-D',
      data,
      '-X',
      'stream',
      '--checkpoint=fast',
      '--no-sync',
    ]),
  );
}
