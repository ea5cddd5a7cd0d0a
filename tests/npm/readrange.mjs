// Read a CAR a gateway sent for entity-bytes=FROM:TO with @ipld/car, and
// the bytes [FROM, TO] of the file under its root with ipfs-unixfs-exporter
// (which fetches only the blocks those bytes need: a CAR that lacks one
// fails); write them to OUT.
// usage: node readrange.mjs CAR FROM TO OUT
import { CarReader } from '@ipld/car/reader'
import { exporter } from 'ipfs-unixfs-exporter'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { readFile, writeFile } from 'node:fs/promises'

const [carFile, from, to, outFile] = process.argv.slice(2)
const reader = await CarReader.fromBytes(await readFile(carFile))
const roots = await reader.getRoots()
const blockstore = new MemoryBlockstore()
for await (const { cid, bytes } of reader.blocks()) await blockstore.put(cid, bytes)
const entry = await exporter(roots[0], blockstore)
const offset = Number(from)
const length = Number(to) - offset + 1
const parts = []
for await (const buf of entry.content({ offset, length })) parts.push(buf)
await writeFile(outFile, Buffer.concat(parts))
console.log(roots[0].toString())
