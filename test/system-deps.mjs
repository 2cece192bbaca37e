#!/usr/bin/env node
// The test suite reads reports back with real readers: poppler's pdftotext for PDF and Debian's
// Chromium (driven by playwright-core) for HTML. Neither comes from npm, so `npm test` makes sure
// they are here before it starts, installing them with apt-get when it can (as root, or with
// password-less sudo), and otherwise stopping with the one command that installs them.
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const PACKAGES = ['chromium', 'poppler-utils', 'fonts-dejavu-core'];

const onPath = (command) =>
  spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const executable = (file) => {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};
const missing = () =>
  [!executable(CHROMIUM) && CHROMIUM, !onPath('pdftotext') && 'pdftotext'].filter(Boolean);

if (missing().length === 0) process.exit(0);

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const sudo = !asRoot && onPath('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
if (!onPath('apt-get') || !(asRoot || sudo)) {
  console.error(
    `test: missing ${missing().join(' and ')}. Install them, then run the tests again:\n` +
      `  sudo apt-get install -y ${PACKAGES.join(' ')}\n` +
      '(or set CHROMIUM_PATH to a Chromium binary elsewhere)',
  );
  process.exit(1);
}

const apt = (...args) => {
  const [command, prefix] = asRoot ? ['apt-get', []] : ['sudo', ['-n', 'apt-get']];
  console.error(`test: apt-get ${args.join(' ')}`);
  execFileSync(command, [...prefix, ...args], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
};
console.error(
  `test: installing ${PACKAGES.join(', ')} for the report readers (${missing().join(', ')} missing)`,
);
try {
  apt('install', '-y', '--no-install-recommends', ...PACKAGES);
} catch {
  // A fresh machine may not have package lists yet.
  apt('update');
  apt('install', '-y', '--no-install-recommends', ...PACKAGES);
}
if (missing().length) {
  console.error(`test: still missing ${missing().join(', ')} after apt-get`);
  process.exit(1);
}
