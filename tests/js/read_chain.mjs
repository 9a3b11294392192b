// A second client for the audit: reads a testnet's chains with ethers.js only.
//
// Nothing here comes from specledger's Python code: the contracts' ABIs and
// runtime code are read from the committed artifacts (contracts/build/*.json),
// the addresses are found on the chains themselves (the root ledger by its
// runtime code, each region market by its RegionRegistered event), and every
// hash, EIP-712 digest and signature is recomputed with ethers. When this client
// and `specledger audit` agree on a live chain, the audit is not just agreeing
// with itself.
//
//   node tests/js/read_chain.mjs --manifest .testnet/testnet.json [--build contracts/build]
//                                [--root 0xROOT_LEDGER]
//
// Prints one JSON object: for the root and each region, the event counts per
// event name and the successful / reverted calls per function name (every block
// from 0 to the head), every decoded Settled event, and every settle() call's
// calldata decoded lease by lease (ids, parties, window, channels, price, offer
// hash, bid digest, the signers recovered, the lease's word and state at the head).
// Integers are decimal strings, so uint256 values survive JSON.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  AbiCoder,
  Contract,
  Interface,
  JsonRpcProvider,
  Network,
  Signature,
  TypedDataEncoder,
  getAddress,
  keccak256,
  recoverAddress,
  toBeHex,
  version,
} from "ethers";

const STATES = ["none", "active", "completed", "relinquished", "defaulted", "expired"];
const ENDINGS = {
  LeaseCompleted: "completed",
  LeaseRelinquished: "relinquished",
  LeaseDefaulted: "defaulted",
  LeaseExpired: "expired",
};
const LOW_72_BITS = (1n << 72n) - 1n; // state byte + heartbeat time: not the record's hash
const HASH_MASK = ((1n << 256n) - 1n) ^ LOW_72_BITS;
const PARALLEL = 16; // requests in flight per chain
const word = (name) => ({ name, type: "uint256" });
// EIP-712 types as RegionMarket.vy spells its typehashes
const OFFER_FIELDS = ["kind", "lo", "hi", "start", "end", "reserveWei", "nonce"];
const BID_FIELDS = ["kind", "lo", "hi", "units", "start", "end", "maxPriceWei", "nonce"];
const OFFER_TYPES = {
  Offer: [word("region"), { name: "seller", type: "address" }, ...OFFER_FIELDS.map(word)],
};
const BID_TYPES = {
  Bid: [word("region"), { name: "buyer", type: "address" }, ...BID_FIELDS.map(word)],
};
const SETTLEMENT_TYPES = {
  Settlement: [
    word("region"),
    word("epoch"),
    ...["orderbookRoot", "leasesHash", "stepsHash"].map((name) => ({ name, type: "bytes32" })),
  ],
};
// the contract's LeaseRecord, abi-encoded for its hash (the lease word keeps its top bits)
const RECORD_FIELDS = ["epoch", "kind", "seller", "buyer", "nonce", "first", "units", "start", "end", "price_wei"];
const RECORD_TYPES = [
  "uint256", "uint256", "address", "address", "uint256", "uint256",
  "uint256", "uint256", "uint256", "uint256", "bytes32",
];

function fail(message) {
  process.stderr.write(`read_chain: ${message}\n`);
  process.exit(2);
}

/** JSON-safe: bigints as decimal strings, ethers Results as plain arrays. */
function plain(value) {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return Array.from(value, plain);
  return value;
}

function named(fragment, args) {
  return Object.fromEntries(fragment.inputs.map((input, i) => [input.name, plain(args[i])]));
}

async function inBatches(items, fn) {
  const out = [];
  for (let i = 0; i < items.length; i += PARALLEL) {
    out.push(...(await Promise.all(items.slice(i, i + PARALLEL).map(fn))));
  }
  return out;
}

function provider(node) {
  const network = Network.from(Number(node.chain_id));
  return new JsonRpcProvider(node.url, network, { staticNetwork: network });
}

function count(names) {
  const counts = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

/** Every log of `address` from block 0 to `head`, decoded with the artifact's ABI. */
async function events(rpc, iface, address, head) {
  const logs = await rpc.getLogs({ address, fromBlock: 0, toBlock: head });
  return logs.map((log) => {
    const parsed = iface.parseLog(log);
    if (parsed === null) fail(`a log of ${address} at block ${log.blockNumber} is not in the ABI`);
    return { name: parsed.name, args: named(parsed.fragment, parsed.args), block: log.blockNumber, tx: log.transactionHash };
  });
}

/** Every transaction to `address` in blocks 0..head, with its receipt's status. */
async function calls(rpc, iface, address, head) {
  const numbers = Array.from({ length: head + 1 }, (_, n) => n);
  const blocks = await inBatches(numbers, (n) => rpc.getBlock(n, true));
  const txs = blocks.flatMap((b) => b.prefetchedTransactions).filter((tx) => tx.to && getAddress(tx.to) === address);
  return inBatches(txs, async (tx) => {
    const receipt = await rpc.getTransactionReceipt(tx.hash);
    const parsed = iface.parseTransaction({ data: tx.data, value: tx.value });
    return { name: parsed?.name ?? "(unknown)", parsed, ok: receipt.status === 1, block: tx.blockNumber, tx: tx.hash };
  });
}

function tally(txs) {
  const out = {};
  for (const { name, ok } of txs) {
    out[name] ??= { ok: 0, reverted: 0 };
    out[name][ok ? "ok" : "reverted"] += 1;
  }
  return out;
}

/** The root ledger: the contract some root transaction created whose code is the artifact's. */
async function findRoot(rpc, runtime, head) {
  const blocks = await inBatches(Array.from({ length: head + 1 }, (_, n) => n), (n) => rpc.getBlock(n, true));
  const creations = blocks.flatMap((b) => b.prefetchedTransactions).filter((tx) => tx.to === null);
  for (const tx of creations) {
    const address = (await rpc.getTransactionReceipt(tx.hash)).contractAddress;
    if (address && (await rpc.getCode(address, head)).toLowerCase() === runtime) return getAddress(address);
  }
  fail("no contract on the root chain has RootLedger's runtime code: pass --root ADDRESS");
}

/** One settle() call's leases, each rebuilt from calldata and checked with ethers alone. */
async function decodeSettlement(call, region, market, domain, head, endings) {
  const a = call.parsed.args;
  const coder = AbiCoder.defaultAbiCoder();
  const settlementDigest = TypedDataEncoder.hash(domain, SETTLEMENT_TYPES, {
    region: region.id, epoch: a.epoch, orderbookRoot: a.orderbook_root, leasesHash: a.leases_hash, stepsHash: a.steps_hash,
  });
  const recovered = a.sigs.map((s) => recoverAddress(settlementDigest, Signature.from({ r: s.r, s: s.s, v: Number(s.v) })));
  const distinct = [...new Set(recovered)];
  const members = await Promise.all(distinct.map((who) => market.is_member(who, { blockTag: call.block })));
  const leases = await Promise.all(
    a.leases.map(async (lease) => {
      const { offer, bid } = lease;
      const seller = getAddress(toBeHex(offer.seller, 20));
      const buyer = getAddress(toBeHex(bid.buyer, 20));
      const offerValue = {
        region: region.id, seller, kind: offer.kind, lo: offer.lo, hi: offer.hi,
        start: offer.start, end: offer.end, reserveWei: offer.reserve_wei, nonce: offer.nonce,
      };
      const bidValue = {
        region: region.id, buyer, kind: bid.kind, lo: bid.lo, hi: bid.hi, units: bid.units,
        start: bid.start, end: bid.end, maxPriceWei: bid.max_price_wei, nonce: bid.nonce,
      };
      const offerHash = TypedDataEncoder.hashStruct("Offer", OFFER_TYPES, offerValue);
      const bidDigest = TypedDataEncoder.hash(domain, BID_TYPES, bidValue);
      const sig = (s) => Signature.from({ r: s.r, s: s.s, v: Number(s.v) });
      const leaseId = keccak256(coder.encode(["address", "uint256"], [buyer, bid.nonce]));
      const record = [
        a.epoch, bid.kind, seller, buyer, bid.nonce, lease.first,
        bid.units, bid.start, bid.end, lease.price_wei, offerHash,
      ];
      const recordHash = BigInt(keccak256(coder.encode(RECORD_TYPES, record)));
      const leaseWord = await market.lease_word(leaseId, { blockTag: head });
      return {
        lease_id: leaseId,
        ...Object.fromEntries(RECORD_FIELDS.map((k, i) => [k, plain(record[i])])),
        offer_hash: offerHash,
        bid_digest: bidDigest,
        max_price_wei: plain(bid.max_price_wei),
        reserve_wei: plain(offer.reserve_wei),
        offer_signer: recoverAddress(
          TypedDataEncoder.hash(domain, OFFER_TYPES, offerValue),
          sig(lease.offer_sig),
        ),
        bid_signer: recoverAddress(bidDigest, sig(lease.bid_sig)),
        word_hash_matches: (leaseWord & HASH_MASK) === (recordHash & HASH_MASK),
        state: STATES[Number(leaseWord & 0xffn)] ?? `unknown ${leaseWord & 0xffn}`,
        state_by_events: endings.get(leaseId) ?? "active",
      };
    }),
  );
  return {
    tx: call.tx,
    block: call.block,
    epoch: plain(a.epoch),
    orderbook_root: a.orderbook_root,
    leases_hash: a.leases_hash,
    steps_hash: a.steps_hash,
    steps: a.steps.length,
    signatures: a.sigs.length,
    committee_signers: distinct.filter((_, i) => members[i]),
    total_price_wei: plain(a.leases.reduce((sum, l) => sum + l.price_wei, 0n)),
    leases,
  };
}

async function readRegion(node, registered, artifact) {
  const rpc = provider(node);
  try {
    const iface = new Interface(artifact.abi);
    const market = new Contract(registered.market, artifact.abi, rpc);
    const head = await rpc.getBlockNumber();
    const code = (await rpc.getCode(registered.market, head)).toLowerCase();
    const evs = await events(rpc, iface, registered.market, head);
    const txs = await calls(rpc, iface, registered.market, head);
    const region = { id: BigInt(registered.region) };
    const domain = {
      name: "specledger RegionMarket",
      version: "1",
      chainId: BigInt(node.chain_id),
      verifyingContract: registered.market,
    };
    const endings = new Map(evs.filter((e) => e.name in ENDINGS).map((e) => [e.args.lease_id, ENDINGS[e.name]]));
    const settles = txs.filter((t) => t.ok && t.name === "settle");
    const settlements = [];
    for (const call of settles) {
      settlements.push(await decodeSettlement(call, region, market, domain, head, endings));
    }
    return {
      region: Number(registered.region),
      chain: node.name,
      chain_id: Number(node.chain_id),
      market: registered.market,
      head,
      code_is_artifact: code === artifact.bytecode_runtime.toLowerCase(),
      domain_separator_matches: (await market.domain_separator({ blockTag: head })) === TypedDataEncoder.hashDomain(domain),
      events: count(evs.map((e) => e.name)),
      calls: tally(txs),
      settled: evs.filter((e) => e.name === "Settled").map((e) => ({ ...e.args, block: e.block, tx: e.tx })),
      lease_activated: evs.filter((e) => e.name === "LeaseActivated").map((e) => ({ ...e.args, block: e.block, tx: e.tx })),
      settlements,
    };
  } finally {
    rpc.destroy();
  }
}

async function main() {
  const { values } = parseArgs({
    options: { manifest: { type: "string" }, build: { type: "string", default: "contracts/build" }, root: { type: "string" } },
  });
  if (!values.manifest) fail("give --manifest path/to/testnet.json (written by `specledger testnet up`)");
  let nodes, rootArtifact, marketArtifact;
  try {
    nodes = JSON.parse(readFileSync(values.manifest, "utf8")).nodes;
    rootArtifact = JSON.parse(readFileSync(join(values.build, "RootLedger.json"), "utf8"));
    marketArtifact = JSON.parse(readFileSync(join(values.build, "RegionMarket.json"), "utf8"));
  } catch (err) {
    fail(`cannot read the manifest or the artifacts (${err.message}): check --manifest and --build`);
  }
  const rootNode = nodes.find((n) => n.name === "root") ?? fail(`${values.manifest} has no node named root`);
  const rpc = provider(rootNode);
  let out;
  try {
    const iface = new Interface(rootArtifact.abi);
    const head = await rpc.getBlockNumber();
    const runtime = rootArtifact.bytecode_runtime.toLowerCase();
    const address = values.root ? getAddress(values.root) : await findRoot(rpc, runtime, head);
    const evs = await events(rpc, iface, address, head);
    const txs = await calls(rpc, iface, address, head);
    const registered = evs.filter((e) => e.name === "RegionRegistered").map((e) => e.args);
    out = {
      client: `ethers ${version}`,
      root: { address, chain_id: Number(rootNode.chain_id), head, events: count(evs.map((e) => e.name)), calls: tally(txs) },
      regions: [],
    };
    for (const reg of registered) {
      const node = nodes.find((n) => BigInt(n.chain_id) === BigInt(reg.shard_chain_id));
      if (!node) {
        const missing = `no node of chain id ${reg.shard_chain_id} in the manifest`;
        out.regions.push({ region: Number(reg.region), market: reg.market, missing });
        continue;
      }
      out.regions.push(await readRegion(node, { ...reg, market: getAddress(reg.market) }, marketArtifact));
    }
  } finally {
    rpc.destroy();
  }
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
}

main().catch((err) => {
  const reason = err.shortMessage ?? err.message ?? String(err);
  if (err.code === "ECONNREFUSED" || err.cause?.code === "ECONNREFUSED") {
    fail(`a node of the manifest does not answer (${reason}): is the testnet up? (specledger testnet up)`);
  }
  fail(`${reason.split("\n")[0]} (${err.code ?? "error"})`);
});
