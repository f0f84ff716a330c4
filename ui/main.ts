/** The UI's entry: wires the controller to this page (keystore, worker, wasm files) and mounts the app. */
import { mount } from 'svelte';
import { Keystore } from '../web-worker-node/keystore.ts';
import { spawnVolunteerWorker } from '../web-worker-node/volunteer-client.ts';
import App from './App.svelte';
import { AppController } from './controller.ts';
import './style.css';
import { wasmFiles } from './wasm-files.ts';

const controller = new AppController({
  search: globalThis.location.search,
  openKeystore: () => Keystore.open(),
  spawnWorker: () => spawnVolunteerWorker(),
  wasmFiles: () => wasmFiles(),
});
mount(App, { target: document.getElementById('app')!, props: { controller } });
void controller.boot();
globalThis.addEventListener('pagehide', () => void controller.close());
