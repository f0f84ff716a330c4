/**
 * The page server of the local network: the built UI (dist/ui, plain static files) plus the files
 * the page trusts from its own site (ui/network-source.ts), generated in memory: `config.json` (the
 * supervisors' WebSocket multiaddrs, the task) and `genesis.json` (chain id, committee node keys,
 * group key: the light client's anchor). A small node:http server: GET and HEAD only, no directory
 * listings, nothing outside the root, `no-store` on the generated files.
 */
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.gz': 'application/octet-stream',
};

export interface UiServer {
  server: Server;
  /** `http://host:port` */
  origin: string;
  port: number;
  close(): Promise<void>;
}

export interface UiServerOptions {
  /** The built UI (dist/ui). */
  root: string;
  host: string;
  /** 0: any free port. */
  port: number;
  /** Generated files served at the root, by name (e.g. `config.json`), as JSON text. */
  generated: Record<string, string>;
}

/** Starts the server; resolves once it listens. */
export function serveUi(opts: UiServerOptions): Promise<UiServer> {
  const root = normalize(opts.root);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://page').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const name = path.replace(/^\/+/, '');
    const generated = opts.generated[name];
    if (generated !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : generated);
      return;
    }
    const file = normalize(join(root, name === '' ? 'index.html' : name));
    if (
      (file !== root && !file.startsWith(root + sep)) ||
      !statSync(file, { throwIfNoEntry: false })?.isFile()
    ) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const body = readFileSync(file);
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': body.byteLength,
      // index.html names hashed assets: it must not be cached across rebuilds.
      'cache-control': file.endsWith('.html') ? 'no-cache' : 'public, max-age=3600',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      const port = (server.address() as AddressInfo).port;
      const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
      resolve({
        server,
        origin: `http://${host}:${port}`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
