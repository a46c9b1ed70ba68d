'use strict';
// Shared helpers of the interop and measurement scripts. Every line meant
// for the Go test starts with "@@ " and is JSON; everything else on stdout
// (OIH's library prints its version when loaded) is ignored.

function args(defaults) {
  const out = Object.assign({}, defaults);
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    const val = argv[i + 1];
    if (val === undefined || val.startsWith('--')) {
      out[key] = true;
    } else {
      out[key] = val;
      i++;
    }
  }
  return out;
}

function emit(obj) {
  process.stdout.write('@@ ' + JSON.stringify(obj) + '\n');
}

function quietLogger(name) {
  // bunyan is a dependency of @openintegrationhub/event-bus; a fatal-only
  // logger keeps its info/error lines off stdout.
  const bunyan = require('bunyan');
  return bunyan.createLogger({ name, level: process.env.OIH_LOG_LEVEL || 'fatal', stream: process.stderr });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// untilStdinCloses resolves when the parent closes our stdin.
function untilStdinCloses() {
  return new Promise((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.on('close', resolve);
    process.stdin.resume();
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

module.exports = { args, emit, quietLogger, sleep, untilStdinCloses, percentile };
