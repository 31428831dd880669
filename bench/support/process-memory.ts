// Memory of a process tree on Linux, sampled from /proc: the sum of PSS (proportional set size,
// so pages shared between Chromium's processes count once) over a process and its descendants.
import { readFileSync, readdirSync } from 'node:fs';

function children(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: fields start after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = map.get(ppid) ?? [];
      list.push(Number(name));
      map.set(ppid, list);
    } catch {
      // the process ended while we looked
    }
  }
  return map;
}

function pssBytes(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Current PSS of `root`'s descendants (and of `root` itself unless `descendantsOnly`), in bytes;
 * null where /proc is missing.
 */
export function treePss(root: number, descendantsOnly = false): number | null {
  try {
    readdirSync('/proc');
  } catch {
    return null;
  }
  const kids = children();
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    if (pid !== root || !descendantsOnly) total += pssBytes(pid);
    stack.push(...(kids.get(pid) ?? []));
  }
  return total;
}

/** Chromium's process kind from its command line (`renderer`, `gpu-process`, ...; `browser` if none). */
function processKind(pid: number): string {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /--type=([\w-]+)/.exec(cmd)?.[1] ?? 'browser';
  } catch {
    return '?';
  }
}

/** The single largest process of the tree by PSS: bytes and Chromium process kind. */
export function largestProcess(
  root: number,
  descendantsOnly = false,
): { pss: number; kind: string } | null {
  try {
    readdirSync('/proc');
  } catch {
    return null;
  }
  const kids = children();
  let best = { pss: 0, pid: 0 };
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    if (pid !== root || !descendantsOnly) {
      const v = pssBytes(pid);
      if (v > best.pss) best = { pss: v, pid };
    }
    stack.push(...(kids.get(pid) ?? []));
  }
  return { pss: best.pss, kind: best.pid ? processKind(best.pid) : '?' };
}

/**
 * Samples `treePss(root)` every `ms` until stopped; reports the peak and the last value, and the
 * peak of the single largest process (the renderer that hosts the inference worker, during a load).
 */
export function sampleTree(root: number, descendantsOnly = false, ms = 250) {
  let peak = 0;
  let last = 0;
  let process = { pss: 0, kind: '?' };
  const tick = () => {
    const v = treePss(root, descendantsOnly);
    if (v !== null) {
      last = v;
      peak = Math.max(peak, v);
    }
    const p = largestProcess(root, descendantsOnly);
    if (p && p.pss > process.pss) process = p;
  };
  tick();
  const timer = setInterval(tick, ms);
  return {
    stop(): { peak: number; last: number; process: { pss: number; kind: string } } {
      clearInterval(timer);
      tick();
      return { peak, last, process };
    },
  };
}
