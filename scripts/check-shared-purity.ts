/**
 * Keeps `shared/` pure: it must run unchanged in a tab, a Web Worker, Node and the deterministic
 * simulator, so it may not import Node built-ins, libp2p, TensorFlow.js or storage libraries, nor
 * touch clocks, timers or DOM storage. Time, randomness and I/O come in through interfaces.
 * Parses with the TypeScript compiler (not regexes) so comments and strings never false-alarm.
 * Run by `npm run lint`, and by `npm test` through check-shared-purity.test.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import ts from 'typescript';

export interface Violation {
  file: string;
  line: number;
  rule: 'node-builtin' | 'forbidden-package' | 'forbidden-global';
  what: string;
}

const builtins = new Set(builtinModules.filter((m) => !m.startsWith('_')));

/** Packages whose job is I/O, networking, training or storage: adapters live outside shared/. */
const forbiddenPackages = [
  /^libp2p$/,
  /^@libp2p\//,
  /^@chainsafe\/libp2p-/,
  /^@multiformats\/multiaddr/,
  /^@tensorflow\//,
  /^idb$/,
  /^idb-keyval$/,
  /^classic-level$/,
  /^level$/,
  /^better-sqlite3$/,
  /^comlink$/,
];

/** Globals that read clocks, schedule work or reach storage or the host process. */
const forbiddenGlobals = new Set([
  'Date',
  'performance',
  'setTimeout',
  'setInterval',
  'setImmediate',
  'clearTimeout',
  'clearInterval',
  'clearImmediate',
  'requestAnimationFrame',
  'indexedDB',
  'IDBFactory',
  'localStorage',
  'sessionStorage',
  'caches',
  'process',
  'require',
  '__dirname',
  '__filename',
]);

function classifySpecifier(spec: string): Violation['rule'] | null {
  // builtinModules lists the real subpath modules too ('fs/promises'); a file path inside an npm
  // package of the same name ('buffer/index.js') is not a built-in.
  if (spec.startsWith('node:') || builtins.has(spec)) return 'node-builtin';
  if (forbiddenPackages.some((re) => re.test(spec))) return 'forbidden-package';
  return null;
}

/** True when `id` is a use of a global name, not a property, key or locally declared binding. */
function isGlobalReference(id: ts.Identifier): boolean {
  const p = id.parent;
  if (ts.isPropertyAccessExpression(p) && p.name === id) return false;
  if (ts.isQualifiedName(p) && p.right === id) return false;
  if (
    (ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p) || ts.isMethodDeclaration(p)) &&
    p.name === id
  )
    return false;
  if ((ts.isPropertySignature(p) || ts.isMethodSignature(p)) && p.name === id) return false;
  if (ts.isImportSpecifier(p) || ts.isExportSpecifier(p)) return false;
  if ((ts.isVariableDeclaration(p) || ts.isParameter(p) || ts.isFunctionDeclaration(p)) && p.name === id)
    return false;
  if (ts.isBindingElement(p)) return false;
  if (ts.isLabeledStatement(p) || ts.isBreakOrContinueStatement(p)) return false;
  return true;
}

export function checkSource(file: string, text: string): Violation[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: Violation[] = [];
  const locals = new Set<string>();
  const lineOf = (n: ts.Node) => sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1;
  const spec = (node: ts.Node, s: string) => {
    const rule = classifySpecifier(s);
    if (rule) out.push({ file, line: lineOf(node), rule, what: s });
  };
  // Locally declared names shadow globals (e.g. a parameter called `process`).
  const collect = (node: ts.Node): void => {
    if ((ts.isVariableDeclaration(node) || ts.isParameter(node)) && ts.isIdentifier(node.name))
      locals.add(node.name.text);
    if ((ts.isFunctionDeclaration(node) || ts.isClassDeclaration(node)) && node.name)
      locals.add(node.name.text);
    if (ts.isImportSpecifier(node) || ts.isImportClause(node) || ts.isNamespaceImport(node)) {
      if (node.name) locals.add(node.name.text);
    }
    ts.forEachChild(node, collect);
  };
  collect(sf);
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      if (ts.isStringLiteral(node.moduleSpecifier)) spec(node, node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const e = node.moduleReference.expression;
      if (ts.isStringLiteral(e)) spec(node, e.text);
    } else if (ts.isCallExpression(node) && node.arguments.length > 0) {
      const arg = node.arguments[0]!;
      const isDynamicImport = node.expression.kind === ts.SyntaxKind.ImportKeyword;
      const isRequire = ts.isIdentifier(node.expression) && node.expression.text === 'require';
      if ((isDynamicImport || isRequire) && ts.isStringLiteralLike(arg)) spec(node, arg.text);
    } else if (ts.isImportTypeNode(node)) {
      const a = node.argument;
      if (ts.isLiteralTypeNode(a) && ts.isStringLiteral(a.literal)) spec(node, a.literal.text);
    } else if (ts.isIdentifier(node) && forbiddenGlobals.has(node.text) && !locals.has(node.text)) {
      if (isGlobalReference(node))
        out.push({ file, line: lineOf(node), rule: 'forbidden-global', what: node.text });
    } else if (
      ts.isPropertyAccessExpression(node) &&
      ts.isIdentifier(node.expression) &&
      ['globalThis', 'window', 'self'].includes(node.expression.text) &&
      forbiddenGlobals.has(node.name.text)
    ) {
      out.push({
        file,
        line: lineOf(node),
        rule: 'forbidden-global',
        what: `${node.expression.text}.${node.name.text}`,
      });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'node_modules') tsFiles(p, out);
    } else if (/\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

export function checkTree(root: string, dir = 'shared'): Violation[] {
  return tsFiles(join(root, dir)).flatMap((f) => checkSource(relative(root, f), readFileSync(f, 'utf8')));
}

if (import.meta.main) {
  const root = join(import.meta.dirname, '..');
  const violations = checkTree(root);
  for (const v of violations) console.error(`${v.file}:${v.line}  ${v.rule}  ${v.what}`);
  if (violations.length > 0) {
    console.error(`shared/ purity: ${violations.length} violation(s)`);
    process.exitCode = 1;
  } else {
    console.log('shared/ purity: ok');
  }
}
