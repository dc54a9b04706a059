/**
 * No container engine on the development machines: lint the Dockerfile's structure, and run the image's entry
 * point and health check directly against the working tree, the way the container would.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/ports.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');

interface Instruction {
  op: string;
  args: string;
}

/** Instructions with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const m = /^(\w+)\s+(.*)$/.exec(line);
      assert.ok(m, `unparsable line: ${line}`);
      return { op: m[1].toUpperCase(), args: m[2] };
    });
}

const instructions = parseDockerfile(dockerfile);
const stageStarts = instructions.flatMap((ins, i) => (ins.op === 'FROM' ? [i] : []));
const finalStage = instructions.slice(stageStarts[stageStarts.length - 1]);
const argDefaults = new Map(
  instructions
    .filter((ins) => ins.op === 'ARG' && ins.args.includes('='))
    .map((ins) => ins.args.split('=', 2) as [string, string]),
);

function jsonArgs(op: string): string[] {
  const ins = finalStage.find((i) => i.op === op);
  assert.ok(ins, `${op} in the final stage`);
  const raw = op === 'HEALTHCHECK' ? ins.args.replace(/^.*?\bCMD\s+/, '') : ins.args;
  const parsed = JSON.parse(raw) as unknown;
  assert.ok(Array.isArray(parsed), `${op} uses the exec (JSON) form`);
  return parsed as string[];
}

/** Map an absolute path inside the image to the working tree. */
function inRepo(imagePath: string): string {
  return imagePath.replace(/^\/opt\/mtproxy\//, repo);
}

const scratch: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

describe('Dockerfile', () => {
  it('is multi-stage on the official Node 24 image', () => {
    assert.ok(stageStarts.length >= 2, 'at least two FROM stages');
    for (const i of stageStarts) {
      const image = instructions[i].args
        .split(/\s+/)[0]
        .replace(/^\$\{(\w+)\}$/, (_, name) => argDefaults.get(name) ?? '');
      assert.match(image, /^node:24(\.|-|$)/, `base image ${image}`);
    }
    assert.match(instructions[stageStarts[stageStarts.length - 1]].args, /\bAS\s+runtime\b/i);
  });

  it('installs production dependencies only, from the lock file', () => {
    const runs = instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
    assert.ok(
      runs.some((r) => /\bnpm ci\b.*--omit=dev/.test(r)),
      'npm ci --omit=dev',
    );
    for (const r of runs) {
      assert.doesNotMatch(r, /\bnpm (install|i)\b/, 'no npm install (not reproducible)');
      if (/\bnpm ci\b/.test(r)) assert.match(r, /--omit=dev/);
    }
    // The final stage copies node_modules from the deps stage instead of installing dev tools itself.
    assert.ok(finalStage.some((i) => i.op === 'COPY' && /--from=\w+\s+\S*node_modules/.test(i.args)));
    assert.ok(
      !finalStage.some((i) => i.op === 'COPY' && /^(\.|\.\/)\s/.test(i.args)),
      'no COPY . (would ship tests)',
    );
  });

  it('keeps state in a volume owned by the runtime user', () => {
    const env = finalStage
      .filter((i) => i.op === 'ENV')
      .map((i) => i.args)
      .join(' ');
    assert.match(env, /MTP_STATE_DIR=\/var\/lib\/mtproxy\b/);
    assert.ok(finalStage.some((i) => i.op === 'VOLUME' && i.args.includes('/var/lib/mtproxy')));
    assert.ok(finalStage.some((i) => i.op === 'RUN' && /chown node:node \/var\/lib\/mtproxy/.test(i.args)));
  });

  it('puts the entry point in PATH as mtproxy', () => {
    assert.ok(
      finalStage.some(
        (i) => i.op === 'RUN' && /ln -s \S*entrypoint\.sh \/usr\/local\/bin\/mtproxy/.test(i.args),
      ),
    );
  });

  it('runs as a non-root user with a health check and an exec-form entry point', () => {
    const users = finalStage.filter((i) => i.op === 'USER');
    assert.ok(users.length > 0, 'USER in the final stage');
    const user = users[users.length - 1].args.split(':')[0];
    assert.notEqual(user, 'root');
    assert.notEqual(user, '0');
    assert.ok(jsonArgs('HEALTHCHECK').length > 0);
    assert.ok(jsonArgs('ENTRYPOINT').length > 0);
    assert.deepEqual(jsonArgs('CMD'), ['run']);
  });

  it('.dockerignore keeps secrets, tests and local modules out of the context', () => {
    const ignored = readFileSync(join(repo, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const entry of ['.git', 'node_modules', 'test', '/mtproxy.toml'])
      assert.ok(ignored.includes(entry), entry);
    // Everything the Dockerfile copies from the context must survive the ignore list.
    for (const copy of instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const s of sources) assert.ok(!ignored.includes(s), `${s} is copied but ignored`);
    }
  });

  it('installs system packages and sets the capability before the sources are copied (cached layer)', () => {
    const setcap = finalStage.findIndex((i) => i.op === 'RUN' && /\bsetcap\b/.test(i.args));
    assert.ok(setcap >= 0, 'setcap in the final stage');
    assert.ok(/\bapt-get install\b/.test(finalStage[setcap].args));
    const firstSourceCopy = finalStage.findIndex(
      (i) => i.op === 'COPY' && /(^|\s)(src|bin|deploy\/\S*|package\.json)(\s|$)/.test(i.args),
    );
    assert.ok(firstSourceCopy >= 0);
    assert.ok(setcap < firstSourceCopy, 'the apt-get/setcap layer comes before COPY of the sources');
  });

  it('installs jemalloc, keeps it and preloads it for the capability-carrying node', () => {
    const install = finalStage.find((i) => i.op === 'RUN' && /\bapt-get install\b/.test(i.args));
    assert.ok(install, 'an apt-get install in the final stage');
    assert.match(install.args, /\blibjemalloc2\b/);
    assert.doesNotMatch(install.args, /apt-get (purge|remove)[^&]*libjemalloc2/);
    // The capability-carrying node runs in secure-execution mode (LD_PRELOAD and MALLOC_CONF are ignored).
    assert.match(install.args, /libjemalloc\.so\.2 > \/etc\/ld\.so\.preload/);
    assert.match(install.args, /ln -s '[^']*background_thread:true[^']*' \/etc\/malloc\.conf/);
    const launcher = readFileSync(join(repo, 'bin', 'mtproxy.js'), 'utf8');
    assert.ok(launcher.includes("'/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'"));
    assert.ok(launcher.includes("'/usr/lib/aarch64-linux-gnu/libjemalloc.so.2'"));
  });

  it('says that no-new-privileges disables binding 443 through the file capability', () => {
    const compose = readFileSync(join(repo, 'compose.yaml'), 'utf8');
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const docker = readme.slice(readme.indexOf('\n## Docker\n'), readme.indexOf('\n## systemd'));
    for (const text of [compose, docker, dockerfile]) {
      assert.match(text, /no-new-privileges/);
      assert.match(text, /1024|1023/);
    }
  });

  it('compose.yaml uses host networking and the same image', () => {
    const compose = readFileSync(join(repo, 'compose.yaml'), 'utf8');
    assert.match(compose, /^\s+network_mode:\s*host\s*$/m);
    assert.match(compose, /^\s+build:\s*\.\s*$/m);
    assert.match(compose, /MTP_SECRET/);
  });
});

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (child.exitCode !== null) assert.fail(`proxy exited early (${child.exitCode}): ${output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`proxy never listened on ${port}: ${output()}`);
}

describe('image entry point, run directly', () => {
  const entry = jsonArgs('ENTRYPOINT').map(inRepo);
  const health = jsonArgs('HEALTHCHECK').map(inRepo);

  function containerEnv(dir: string): NodeJS.ProcessEnv {
    return {
      // The image's node is first in PATH; here that is the pinned runtime running this test.
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: dir,
      NODE_ENV: 'production',
      MTPROXY_HOME: repo,
      MTPROXY_CONFIG: join(dir, 'etc-mtproxy.toml'),
      MTPROXY_RUN_ARGS_FILE: join(dir, 'run.args'),
      MTPROXY_HEALTH_TARGETS_FILE: join(dir, 'health.targets'),
      // The image's ENV points state at its volume.
      MTP_STATE_DIR: join(dir, 'state'),
    };
  }

  it('--help works', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mtproxy-image-'));
    scratch.push(dir);
    const r = spawnSync(entry[0], [...entry.slice(1), '--help'], {
      cwd: dir,
      env: containerEnv(dir),
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /mtproxy/);
    assert.match(r.stdout + r.stderr, /run/);
  });

  for (const source of ['env', 'mounted config'] as const) {
    it(`runs with ${source === 'env' ? 'MTP_* variables over a mounted config' : 'a config at /etc/mtproxy'}, passes its health check, stops on SIGTERM`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mtproxy-image-'));
      scratch.push(dir);
      const port = await freePort();
      const secret = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
      const env = containerEnv(dir);
      // The listen host comes from the file in both cases (tests stay on loopback); with MTP_* set, the
      // variables override the file's port and secret, as in the image.
      const fileSecret = source === 'env' ? 'ffffffffffffffffffffffffffffffff' : secret;
      const filePort = source === 'env' ? port + 1 : port;
      writeFileSync(
        env.MTPROXY_CONFIG as string,
        `[[listeners]]\nname = "main"\nhost = "127.0.0.1"\nport = ${filePort}\nsecret = "${fileSecret}"\n`,
      );
      if (source === 'env') Object.assign(env, { MTP_PORT: String(port), MTP_SECRET: secret });
      const child = spawn(entry[0], [...entry.slice(1), ...jsonArgs('CMD')], {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(child);
      let output = '';
      child.stdout?.on('data', (d) => (output += d));
      child.stderr?.on('data', (d) => (output += d));
      await waitForPort(port, child, () => output);
      for (let i = 0; i < 100 && !output.includes(`dd${secret}`); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(output, new RegExp(`dd${secret}`), 'links printed');

      const h = spawnSync(health[0], health.slice(1), { cwd: dir, env, encoding: 'utf8' });
      assert.equal(h.status, 0, `health check: ${h.stdout}${h.stderr}`);

      // Later checks start no Node.js process: a `node` first in PATH that only leaves a mark is never run.
      const stubs = join(dir, 'stub-bin');
      const mark = join(dir, 'node-was-started');
      mkdirSync(stubs);
      writeFileSync(join(stubs, 'node'), `#!/bin/sh\ntouch '${mark}'\nexit 99\n`, { mode: 0o755 });
      const probeEnv = { ...env, PATH: `${stubs}:${env.PATH}` };
      for (let i = 0; i < 2; i++) {
        const again = spawnSync(health[0], health.slice(1), { cwd: dir, env: probeEnv, encoding: 'utf8' });
        assert.equal(again.status, 0, `health check: ${again.stdout}${again.stderr}`);
      }
      assert.ok(!existsSync(mark), 'the health check started node');

      assert.ok(!existsSync(join(dir, 'mtproxy-state')), 'no state next to the (read-only) config');

      // `docker exec NAME mtproxy doctor` goes through the same entry point and finds the same config.
      const doctor = spawnSync(entry[0], [...entry.slice(1), 'doctor', '--offline'], {
        cwd: dir,
        env,
        encoding: 'utf8',
      });
      assert.match(
        doctor.stdout,
        new RegExp(`valid from ${env.MTPROXY_CONFIG}.*127\\.0\\.0\\.1:${port}`),
        doctor.stderr,
      );

      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, output);

      // With the proxy gone the health check must fail.
      const down = spawnSync(health[0], health.slice(1), { cwd: dir, env: probeEnv, encoding: 'utf8' });
      assert.notEqual(down.status, 0);
      assert.ok(!existsSync(mark), 'the health check started node');
    });
  }
});

describe('image health check', () => {
  it('works out the listeners from run arguments that doctor does not take (--watch), once', async () => {
    const health = jsonArgs('HEALTHCHECK').map(inRepo);
    const dir = mkdtempSync(join(tmpdir(), 'mtproxy-health-'));
    scratch.push(dir);
    const server = (await import('node:net')).createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    try {
      const args = ['run', '--watch', '-p', String(port), '-s', 'a1b2c3d4e5f60718293a4b5c6d7e8f90'];
      writeFileSync(join(dir, 'run.args'), args.map((a) => `${a}\0`).join(''));
      const env = {
        PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        HOME: dir,
        MTPROXY_HOME: repo,
        MTPROXY_RUN_ARGS_FILE: join(dir, 'run.args'),
        MTPROXY_HEALTH_TARGETS_FILE: join(dir, 'health.targets'),
      };
      const r = spawnSync(health[0], health.slice(1), { cwd: dir, env, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(
        readFileSync(join(dir, 'health.targets'), 'utf8'),
        new RegExp(`^127\\.0\\.0\\.1 ${port}$`, 'm'),
      );
    } finally {
      server.close();
    }
  });
});
