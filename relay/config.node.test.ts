/**
 * Relay configuration: defaults, partial files, flags over files, and a typed error naming the field
 * for every kind of bad input (unknown field, wrong type, out of range, bad multiaddr, cross-field).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, assert, describe, it } from '#test';
import { MAX_GOSSIP_BYTES } from '../shared/net/protocols.ts';
import { configFromArgs, DEFAULT_CONFIG, parseConfig } from './config.ts';
import type { RelayError } from './errors.ts';

function fieldOf(fn: () => unknown, code = 'RELAY_CONFIG_INVALID'): unknown {
  const e = assert.throws(fn, { name: 'RelayError', code, verdict: 'REJECT' }) as RelayError;
  return e.detail['field'];
}

describe('relay config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pouw-relay-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('an empty file gives the documented defaults, sized above the stock relay limits', () => {
    const c = parseConfig({});
    assert.deepEqual(c, DEFAULT_CONFIG);
    assert.ok(c.relay.circuitDataBytes > 128 * 1024, 'more than 128 KiB per circuit');
    assert.ok(c.relay.circuitDurationMs > 2 * 60 * 1000, 'longer than 2 minutes per circuit');
    assert.equal(c.gossip.maxMessageBytes, MAX_GOSSIP_BYTES);
    assert.ok(c.rateLimits.gossipBytesBurst >= MAX_GOSSIP_BYTES);
  });

  it('a partial section keeps the defaults of the fields it does not name', () => {
    const c = parseConfig({ relay: { maxReservations: 3 }, http: { port: 0 } });
    assert.equal(c.relay.maxReservations, 3);
    assert.equal(c.relay.circuitsPerPeer, DEFAULT_CONFIG.relay.circuitsPerPeer);
    assert.equal(c.http.port, 0);
    assert.equal(c.http.host, DEFAULT_CONFIG.http.host);
  });

  it('names the bad field in a typed error', () => {
    assert.equal(
      fieldOf(() => parseConfig({ relay: { maxReservation: 3 } })),
      'relay.maxReservation',
      'typo = unknown',
    );
    assert.equal(
      fieldOf(() => parseConfig({ http: { port: '80' } })),
      'http.port',
    );
    assert.equal(
      fieldOf(() => parseConfig({ http: { port: 70_000 } })),
      'http.port',
    );
    assert.equal(
      fieldOf(() => parseConfig({ connections: { max: 1.5 } })),
      'connections.max',
    );
    assert.equal(
      fieldOf(() => parseConfig({ relay: { circuitDurationMs: 2 ** 32 } })),
      'relay.circuitDurationMs',
      'uint32 on the wire',
    );
    assert.equal(
      fieldOf(() => parseConfig({ listen: ['/ip4/127.0.0.1/tcp/1', 'not a multiaddr'] })),
      'listen[1]',
    );
    assert.equal(
      fieldOf(() => parseConfig({ listen: ['/ip4/127.0.0.1/udp/1/quic-v1'] })),
      'listen[0]',
      'no transport for it',
    );
    assert.equal(
      fieldOf(() => parseConfig({ listen: [] })),
      'listen',
    );
    assert.equal(
      fieldOf(() => parseConfig({ chainId: 'Bad_Chain' })),
      'chainId',
    );
    assert.equal(
      fieldOf(() => parseConfig({ logLevel: 'verbose' })),
      'logLevel',
    );
    assert.equal(
      fieldOf(() => parseConfig({ gossip: { maxMessageBytes: MAX_GOSSIP_BYTES + 1 } })),
      'gossip.maxMessageBytes',
    );
    assert.equal(
      fieldOf(() => parseConfig({ rateLimits: { gossipBytesBurst: 1024 * 1024 } })),
      'rateLimits.gossipBytesBurst',
      'a burst below the largest message could never pass it',
    );
    assert.equal(
      fieldOf(() => parseConfig({ relay: [] })),
      'relay',
    );
    assert.equal(
      fieldOf(() => parseConfig([])),
      '(root)',
    );
  });

  it('flags override the file; list flags replace its lists', () => {
    const path = join(dir, 'relay.json');
    writeFileSync(
      path,
      JSON.stringify({
        dataDir: '/tmp/x',
        listen: ['/ip4/127.0.0.1/tcp/1'],
        http: { port: 1 },
        chainId: 'c1',
      }),
    );
    const { config, configPath } = configFromArgs([
      '--config',
      path,
      '--http-port=0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0',
      '--listen',
      '/ip4/127.0.0.1/tcp/0/ws',
      '--chain-id',
      'any',
    ]);
    assert.equal(configPath, path);
    assert.equal(config.dataDir, '/tmp/x');
    assert.equal(config.http.port, 0);
    assert.deepEqual(config.listen, ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws']);
    assert.equal(config.chainId, null);
    assert.deepEqual(configFromArgs([]).config, DEFAULT_CONFIG, 'no file, no flags: defaults');
  });

  it('bad flags and bad files are typed errors too', () => {
    assert.equal(
      fieldOf(() => configFromArgs(['--http-port', 'abc'])),
      'http.port',
    );
    assert.equal(
      fieldOf(() => configFromArgs(['--log-level', 'loud'])),
      'logLevel',
    );
    assert.equal(
      fieldOf(() => configFromArgs(['--porttt', '1'])),
      '--porttt',
    );
    assert.equal(
      fieldOf(() => configFromArgs(['--data-dir'])),
      '--data-dir',
      'a flag without a value',
    );
    fieldOf(() => configFromArgs(['--config', join(dir, 'missing.json')]), 'RELAY_CONFIG_UNREADABLE');
    const notJson = join(dir, 'bad.json');
    writeFileSync(notJson, '{ listen: ');
    fieldOf(() => configFromArgs(['--config', notJson]), 'RELAY_CONFIG_UNREADABLE');
  });
});
