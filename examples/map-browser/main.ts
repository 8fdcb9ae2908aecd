/**
 * The browser half of examples/map-browser-reader.ts: a page that joins the network as one more peer
 * (the SDK's browser build) and reads the `examples/scores` Map from its local replica, re-rendering
 * on every version the writer commits. It learns the network name, the writer's WebSockets address and
 * the store id from `/config.json`, which map-browser-reader.ts serves with this bundle.
 */
import { browserPlatform, collections, Network } from '../../platform/browser/index.ts'

interface Config {
  network: string
  bootstrap: string[]
  store: string
}

const config = (await (await fetch('/config.json')).json()) as Config
const status = document.getElementById('status')!
const rows = document.getElementById('entries')!

const net = await Network.create({
  network: config.network,
  bootstrap: config.bootstrap,
  allowPrivateAddresses: true, // development only: browsers refuse loopback and LAN addresses otherwise
  // Importing the package entry ('mosaik') registers the platform; bundled from these sources, whose
  // package.json marks only dist/ as having side effects, the registration is tree-shaken: name it.
  platform: browserPlatform,
})
const scores = collections.Map.reader<string, number>(net, config.store)
status.textContent = `peer ${net.peerId}: joining the Map's group as a reader…`

// `updates()` yields every version this replica reaches; the entries are read locally, synchronously.
for await (const version of scores.updates()) {
  rows.replaceChildren(
    ...[...scores.entries()].map(([player, score]) => {
      const tr = document.createElement('tr')
      for (const text of [player, String(score)])
        tr.appendChild(document.createElement('td')).textContent = text
      return tr
    }),
  )
  status.textContent = `version ${version}, ${scores.size} entries`
  document.body.dataset.version = String(version) // for the example's test
}
