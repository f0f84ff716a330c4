/**
 * `npm start`: brings up what exists of the local network today. It creates (or reuses) the devnet
 * in `.data/devnet` (committee keys from a DKG, faucet wallet, genesis), opens the chain store and
 * loads the ledger from it, checks that t of the n supervisors' shares produce a finality signature
 * the genesis group key accepts, and prints the state. The relay, supervisors, miners and the UI
 * join in issue #6; until then this command exits after the checks.
 * Options: `--data-dir DIR`.
 */
import { join } from 'node:path';
import { ChainStore } from '../node-common/chain-store.ts';
import { defaultNodeEd25519 } from '../node-common/ed25519-node.ts';
import { bytesToHex } from '../shared/bytes.ts';
import { finalityMessage } from '../shared/chain/certificate.ts';
import { decodeAddress } from '../shared/crypto/address.ts';
import * as bls from '../shared/crypto/bls.ts';
import { combine, partialSign } from '../shared/crypto/threshold-bls.ts';
import { ensureDevnet, shareOf } from './devnet.ts';

const args = process.argv.slice(2);
const dirIndex = args.indexOf('--data-dir');
const dir = dirIndex >= 0 ? args[dirIndex + 1]! : join(import.meta.dirname, '..', '.data', 'devnet');

const devnet = await ensureDevnet(dir);
const { genesis } = devnet;
const ed = await defaultNodeEd25519();
const store = await ChainStore.open(join(dir, 'chain'));
try {
  const ledger = await store.loadLedger(genesis, {
    ed25519Verify: ed.verify.bind(ed),
    blsVerify: bls.verify,
  });
  const tip = ledger.tip;
  // Committee self-check: t partial signatures over the tip's finality message combine into one
  // signature that plain BLS verification accepts against the genesis group key.
  const t = genesis.committee.threshold;
  const message = finalityMessage(genesis.chainId, tip.height, tip.hash, new Uint8Array(32));
  const partials = devnet.supervisors.slice(0, t).map((k) => partialSign(shareOf(k), message));
  const signature = combine(partials, t, {
    publicShares: genesis.committee.members.map((m) => m.blsPublicShare),
    message,
  });
  const committeeOk = bls.verify(genesis.committee.groupPublicKey, message, signature);
  const faucet = decodeAddress(devnet.faucet.address);
  let faucetBalance = 0n;
  for (const { out } of ledger.unspent())
    if (bytesToHex(out.owner) === bytesToHex(faucet)) faucetBalance += out.value;

  console.log(`PoUW devnet "${genesis.chainId}" (data: ${dir})`);
  console.log(`  ed25519 implementation : ${ed.name}`);
  console.log(`  finalized tip          : height ${tip.height}, ${bytesToHex(tip.hash)}`);
  console.log(
    `  state root             : ${bytesToHex(ledger.stateRoot)} (${ledger.utxoCount} unspent outputs)`,
  );
  console.log(
    `  committee              : ${genesis.committee.members.length} supervisors, threshold ${t}, group key ${bytesToHex(genesis.committee.groupPublicKey).slice(0, 24)}…`,
  );
  console.log(
    `  threshold signature    : ${committeeOk ? 'ok' : 'FAILED'} (${t} of ${genesis.committee.members.length} shares)`,
  );
  console.log(`  faucet                 : ${devnet.faucet.address}, balance ${faucetBalance}`);
  console.log('');
  console.log('The relay, supervisors, miners and the web UI join this devnet in issue #6;');
  console.log('today `npm start` sets up and checks the chain they will run on, then exits.');
  if (!committeeOk) process.exitCode = 1;
} finally {
  await store.close();
}
