// @web/test-runner config: the portable test files (everything *.test.ts under shared/ that is not
// *.node.test.ts) plus browser-only *.browser.test.ts files run in headless Debian Chromium.
// Test files are bundled on the fly with esbuild (TS, JSON vectors, CommonJS deps, `#test` resolved
// to the browser harness), because the dev server serves files unbundled.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { summaryReporter } from '@web/test-runner';
import { playwrightLauncher } from '@web/test-runner-playwright';
import * as esbuild from 'esbuild';
import { chromiumArgs, chromiumPath } from './tests/harness/chromium.ts';

const root = dirname(fileURLToPath(import.meta.url));
const resultsFile = process.env.POUW_BROWSER_RESULTS ?? join(root, '.tmp', 'browser-results.json');

// Test files and Web Worker entry files (`*.worker.ts`, spawned with
// `new Worker(new URL('./x.worker.ts', import.meta.url), { type: 'module' })`) are bundled the same way.
// TF.js's .wasm files are served as they are from /node_modules/@tensorflow/tfjs-backend-wasm/dist/.
function bundleTestFiles() {
  return {
    name: 'pouw-bundle-tests',
    async serve(context) {
      if (!context.path.endsWith('.test.ts') && !context.path.endsWith('.worker.ts')) return undefined;
      const result = await esbuild.build({
        entryPoints: [join(root, decodeURIComponent(context.path))],
        bundle: true,
        format: 'esm',
        platform: 'browser',
        target: 'es2022',
        conditions: ['browser'],
        write: false,
        sourcemap: 'inline',
        logLevel: 'silent',
      });
      return { body: result.outputFiles[0].text, type: 'js' };
    },
  };
}

/**
 * Server commands `pouw-verify-start` / `pouw-verify-poll` (browser tests call them with
 * executeServerCommand): run the Node verifier (TF.js cpu / wasm) on a candidate produced in the
 * browser. A command must answer within the dev server's fixed 20 s, and a replay on a loaded machine
 * can take longer, so `start` returns a job id at once and `poll` waits up to 10 s for the verdicts
 * ({ done: false } until then). The handler is TypeScript, loaded on first use through tsx
 * (tests/harness/verify-command.ts).
 */
function verifyCommand() {
  let handler;
  const jobs = new Map();
  let nextJob = 0;
  const load = () => {
    handler ??= import('tsx/esm/api').then(({ tsImport }) =>
      tsImport('./tests/harness/verify-command.ts', import.meta.url).then((m) => m.handleVerifyCommand),
    );
    return handler;
  };
  return {
    name: 'pouw-verify-command',
    async executeCommand({ command, payload }) {
      if (command === 'pouw-verify-start') {
        const id = nextJob++;
        const job = { done: false };
        job.promise = load()
          .then((h) => h(payload))
          .then(
            (result) => Object.assign(job, { done: true, result }),
            (e) => Object.assign(job, { done: true, error: String(e?.stack ?? e) }),
          );
        jobs.set(id, job);
        return id;
      }
      if (command === 'pouw-verify-poll') {
        const job = jobs.get(payload.id);
        if (job === undefined) return { done: true, error: `unknown job ${payload.id}` };
        await Promise.race([job.promise, new Promise((resolve) => setTimeout(resolve, 10_000))]);
        if (!job.done) return { done: false };
        jobs.delete(payload.id);
        return { done: true, result: job.result, error: job.error };
      }
      return undefined;
    },
  };
}

/** Counts passed and failed tests for the summary line printed by scripts/test-all.ts. */
function countingReporter() {
  return {
    onTestRunFinished({ sessions }) {
      let passed = 0;
      let failed = 0;
      const failures = [];
      const walk = (suite, file, prefix) => {
        for (const t of suite.tests ?? []) {
          if (t.skipped) continue;
          if (t.passed) passed++;
          else {
            failed++;
            failures.push(`${file} › ${prefix}${t.name}: ${t.error?.message ?? 'failed'}`);
          }
        }
        for (const s of suite.suites ?? []) walk(s, file, `${prefix}${s.name} › `);
      };
      for (const s of sessions) {
        if (s.testResults) walk(s.testResults, s.testFile, '');
        // A file that failed to load or threw outside a test counts as one failure.
        if ((s.errors?.length ?? 0) > 0 || (!s.testResults && !s.passed)) {
          failed++;
          failures.push(`${s.testFile}: ${s.errors?.map((e) => e.message).join('; ') ?? 'session failed'}`);
        }
      }
      mkdirSync(dirname(resultsFile), { recursive: true });
      writeFileSync(resultsFile, JSON.stringify({ passed, failed, failures }, null, 2));
    },
  };
}

export default {
  rootDir: root,
  files: ['shared/**/*.test.ts', '!shared/**/*.node.test.ts', '**/*.browser.test.ts', '!node_modules/**'],
  concurrency: 2,
  testsFinishTimeout: 600_000,
  browserStartTimeout: 60_000,
  testFramework: { config: { timeout: 120_000 } },
  plugins: [bundleTestFiles(), verifyCommand()],
  browsers: [
    playwrightLauncher({
      product: 'chromium',
      launchOptions: {
        executablePath: chromiumPath,
        headless: true,
        args: chromiumArgs,
      },
    }),
  ],
  reporters: [summaryReporter({ flatten: false }), countingReporter()],
};
