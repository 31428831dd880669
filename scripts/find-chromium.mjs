// Finds a Chromium for the browser tests: CHROMIUM_PATH, then the system, then Playwright's
// cache. On Debian as root with none found, installs Debian's `chromium` package. Otherwise
// exits with one line saying how to get one. Prints the path on stdout.
import { existsSync, readdirSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function playwrightCache() {
  const root = process.env.PLAYWRIGHT_BROWSERS_PATH || join(homedir(), '.cache', 'ms-playwright');
  if (!existsSync(root)) return null;
  for (const dir of readdirSync(root)
    .filter((d) => d.startsWith('chromium'))
    .sort()
    .reverse()) {
    for (const rel of [
      'chrome-linux/chrome',
      'chrome-linux64/chrome',
      'chrome-mac/Chromium.app/Contents/MacOS/Chromium',
    ]) {
      const p = join(root, dir, rel);
      if (existsSync(p)) return p;
    }
  }
  return null;
}

export function findChromium() {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv))
      throw new Error(`CHROMIUM_PATH is set to ${fromEnv}, which does not exist.`);
    return fromEnv;
  }
  for (const name of ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome']) {
    const p = which(name);
    if (p) return p;
  }
  return playwrightCache();
}

function isDebianRoot() {
  return existsSync('/etc/debian_version') && process.getuid?.() === 0 && which('apt-get') !== null;
}

export function ensureChromium() {
  let path = findChromium();
  if (path) return path;
  if (isDebianRoot()) {
    console.error(
      "No Chromium found: installing Debian's chromium package (apt-get install chromium)…",
    );
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    path = findChromium();
    if (path) return path;
  }
  console.error(
    'No Chromium found. Install one (Debian/Ubuntu: `sudo apt-get install chromium`; macOS: `brew install --cask chromium`; ' +
      'or any Chrome/Chromium) and set CHROMIUM_PATH=/path/to/chromium, then run npm test again.',
  );
  process.exit(2);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(ensureChromium());
}
