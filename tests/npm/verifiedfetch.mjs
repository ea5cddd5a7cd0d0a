// Fetch ipfs://CID with Helia's @helia/verified-fetch from one trustless
// gateway (loopback only: no libp2p transports, no routers but the
// gateway), and write the verified bytes to OUT.
// usage: node verifiedfetch.mjs GATEWAY-URL CID OUT
import { createVerifiedFetch } from '@helia/verified-fetch'
import { writeFile } from 'node:fs/promises'

// Node 20 lacks it and Helia uses it (INTEROP-NOTES)
if (!Promise.withResolvers) {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const [gateway, cid, outFile] = process.argv.slice(2)
const verifiedFetch = await createVerifiedFetch({
  gateways: [gateway],
  routers: [],
  allowLocal: true,
  allowInsecure: true,
  libp2pConfig: { addresses: { listen: [] }, transports: [], peerDiscovery: [], services: {} }
})
const res = await verifiedFetch(`ipfs://${cid}`, { signal: AbortSignal.timeout(150000) })
if (!res.ok) {
  console.error(`verified-fetch: HTTP ${res.status}: ${await res.text()}`)
  process.exit(1)
}
await writeFile(outFile, Buffer.from(await res.arrayBuffer()))
// stopping Helia can hang on Node 20: the bytes are out, leave
process.exit(0)
