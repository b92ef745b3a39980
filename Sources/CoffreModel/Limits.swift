/// Every bound Coffre enforces, in one place.
///
/// Why one place: a limit that lives next to the code that checks it is easy to change by
/// accident and hard to review as a whole (TigerBeetle's `constants.zig`). Names put the
/// qualifier last (`shardsMax`, not `maxShards`).
public enum Limits {
    // MARK: Erasure coding

    /// Largest k + m of a Reed-Solomon policy. ISA-L's Cauchy matrices are invertible for any
    /// k + m up to 256; 64 keeps the decode-table cache small and is far above any useful policy.
    public static let shardsMax = 64
    /// Largest number of data shards (k).
    public static let dataShardsMax = 48
    /// Largest number of parity shards (m).
    public static let parityShardsMax = 32
    /// Decode tables kept per codec, one per erasure pattern (an LRU beyond this).
    public static let decodeTablesCachedMax = 256
    /// Largest shard the codec accepts in one call (ISA-L takes an `int` length).
    public static let shardSizeMax = 1 << 30

    // MARK: File format

    /// Plaintext bytes per chunk of the v1 file format (fixed by the format, see Docs/format.md).
    public static let formatChunkSize = 64 * 1024
    /// Largest plaintext the v1 format can address: 2^88 chunks would overflow the nonce
    /// counter long before; we stop at 2^48 bytes (256 TiB) per file version.
    public static let formatPlaintextMax: UInt64 = 1 << 48

    // MARK: Keys

    /// Argon2id floor the client refuses to go under: libsodium's INTERACTIVE limits.
    public static let argon2OpsMin: UInt64 = 2
    /// Argon2id memory floor in bytes (64 MiB).
    public static let argon2MemoryMin: UInt64 = 64 << 20
    /// Argon2id ceiling in bytes, so a hostile server cannot make a client allocate without bound.
    public static let argon2MemoryMax: UInt64 = 4 << 30
    /// Argon2id operations ceiling, for the same reason.
    public static let argon2OpsMax: UInt64 = 32
    /// PBKDF2-HMAC-SHA512 rounds a link password gets when it is created (Docs/keys.md: about
    /// 0.6 s in headless Chromium on the reference machine, well under the 3 s a reader waits).
    public static let linkPasswordIterationsDefault = 1_000_000
    /// Fewest rounds a reader accepts in a link record (OWASP's 2023 figure for SHA-512).
    public static let linkPasswordIterationsMin = 210_000
    /// Most rounds a reader accepts, so a hostile server cannot make it spin for minutes.
    public static let linkPasswordIterationsMax = 10_000_000
    /// Deepest walk up a tree: a move's check that a folder does not go inside itself, and a
    /// folder link's check that a node is below the linked folder.
    public static let treeDepthMax = 1000
    /// Children re-wrapped in one request while a folder takes a new key: each costs six
    /// operations of one metadata transaction (`metadataTransactionOperationsMax`).
    public static let rekeyChildrenPerRequestMax = 10
    /// Accounts one folder may be shared with: a folder's key change seals the key for each
    /// in one metadata transaction (two operations each, `metadataTransactionOperationsMax`).
    public static let sharesPerFolderMax = 25
    /// Nodes one recursive delete or purge removes at most (each is a transaction).
    public static let purgeNodesMax = 100_000
    /// Nodes the leader's bin purge removes per entry and pass (a larger tree goes on at the
    /// next pass).
    public static let purgeNodesPerPass = 1000
    /// Rubbish bin entries per page of `GET /v1/bin`.
    public static let binPageMax = 100
    /// Largest encrypted attribute blob (name, size, mtime, ...) in bytes.
    public static let attributesSizeMax = 64 * 1024
    /// Largest file name in bytes (UTF-8), as on most file systems.
    public static let fileNameSizeMax = 255

    // MARK: Shard store

    /// Largest shard body the store accepts.
    public static let shardBodySizeMax = 256 << 20
    /// Largest shard key in bytes: its hexadecimal form names the body file, and must fit
    /// in a file name (255 bytes on Linux file systems).
    public static let shardKeySizeMax = 120
    /// Entries a scrub step or a list call returns at most.
    public static let shardListPageMax = 10_000
    /// Largest piece of a body handed to TLS in one write. TLS (swift-nio-ssl) encrypts a
    /// whole write into one output buffer before sending it, so a 16 MiB write costs a
    /// 16 MiB buffer of fresh pages; pieces of this size stay in reused heap memory
    /// (Docs/performance.md, "Cluster").
    public static let networkWriteSizeMax = 256 << 10
    /// Largest shard body the `files` engine keeps in RocksDB next to its record instead of
    /// in a file of its own: one synced write-ahead-log append instead of a file write, its
    /// `fdatasync`, a rename and a folder `fsync` — small files' shards are all this small.
    public static let shardInlineSizeMax = 64 << 10
    /// Seconds between a node's announcements once one was accepted.
    public static let nodeAnnounceIntervalSeconds: Int64 = 30
    /// Locks a shard store stripes its keys over (put and conditional delete of one key).
    public static let shardKeyLockStripes = 256
    /// Shard body buffers a storage node keeps for reuse.
    public static let nodeBodyBuffersPooledMax = 16
    /// Bytes of a request's header fields together (one field may use them all: encrypted
    /// attributes travel in a header, base64url of up to 64 KiB), fields in a request, and
    /// bytes of its URL. Larger requests are refused (400/413 with the JSON error).
    public static let requestHeaderBytesMax = 96 << 10
    public static let requestHeaderCountMax = 100
    public static let urlBytesMax = 8 << 10
    /// Connections a daemon holds at once, and from one source address (HTTP/2 streams count
    /// as connections); more are closed at once.
    public static let connectionsMax = 4096
    public static let connectionsPerAddressMax = 256
    /// Requests a daemon serves at once (from their headers until their answer is written);
    /// more are answered 503 `unavailable` with `Retry-After` at once, before any work.
    public static let requestsInFlightMax = 1024
    /// Seconds from a connection's opening to its first request's headers, whole; and from an
    /// answer to the next request on a kept-alive connection. Slower clients are cut off.
    public static let requestHeaderSecondsMax: Int64 = 10
    public static let keepAliveIdleSecondsMax: Int64 = 75
    /// A request body must bring at least this many bytes every this many seconds of the
    /// daemon waiting for it, or the connection is cut off.
    public static let bodyProgressSeconds: Int64 = 10
    public static let bodyProgressBytesMin = 1024
    /// Keys (names, addresses) a coordinator's rate limiter remembers at once.
    public static let rateLimitKeysMax = 100_000
    /// Sign-ins per account name: a burst, then so many a minute; per source address the same
    /// for every name together; registrations per source address.
    public static let loginBurstPerAccount = 10
    public static let loginsPerMinutePerAccount = 10
    public static let loginBurstPerAddress = 60
    public static let loginsPerMinutePerAddress = 60
    public static let registrationBurstPerAddress = 20
    public static let registrationsPerMinutePerAddress = 10
    /// Bytes of a JSON request body (every API call but uploads and shard writes).
    public static let jsonBodyBytesMax = 1 << 20
    /// Free space a storage node keeps on its data disk: it refuses shards (507 `node_full`)
    /// and reports itself full rather than let its disk run out, so that its metadata store
    /// can still write and deletes can still free space.
    public static let nodeDiskReserveBytes: Int64 = 32 << 20
    /// Bytes a shard body write hands the kernel at once with direct I/O (the size of the
    /// aligned bounce buffer per write in flight).
    public static let shardDirectWriteBlockSize = 1 << 20
}

extension Limits {
    /// Largest number of storage nodes placement considers at once.
    public static let nodesMax = 10_000
}

extension Limits {
    /// Largest metadata key in bytes.
    public static let metadataKeySizeMax = 1024
    /// Largest metadata value, and largest transaction, in bytes (etcd refuses requests over
    /// 1.5 MiB by default; this leaves room for the encoding).
    public static let metadataValueSizeMax = 1 << 20
    /// Most conditions plus mutations in one transaction (etcd's default is 128).
    public static let metadataTransactionOperationsMax = 64
    /// Seconds a metadata call keeps retrying while etcd has no leader or no member answers
    /// (an election after a member's death takes about 3 s here).
    public static let metadataUnavailableRetrySeconds: Int64 = 8
    /// Default age an unreferenced shard must reach before the collector deletes it.
    public static let collectorGraceSecondsDefault: Int64 = 3600
    /// Most entries one list call returns.
    public static let metadataListPageMax = 1000
    /// Times a client tries one step of a key change, or a write that met one (`key_changed`,
    /// `key_changing`), reading again between tries.
    public static let keyChangeAttemptsMax = 4

    // Takedowns and the transparency log (Docs/policy.md).
    /// Takedowns in force on one link or one file at once (global and a few countries).
    public static let takedownsPerTargetMax = 16
    /// A notice reference or a restore note, in bytes.
    public static let takedownNoticeBytesMax = 256
    /// An appeal's message, in bytes, and appeals per takedown.
    public static let appealBytesMax = 4000
    public static let appealsPerTakedownMax = 10
    /// Takedowns per page of a listing, and transparency entries per page.
    public static let takedownsPageMax = 100
    public static let transparencyPageMax = 500
    /// The largest storage quota an operator may set on an account (1 EiB).
    public static let accountQuotaBytesMax: Int64 = 1 << 60
    /// Countries one account may exclude.
    public static let excludedCountriesMax = 64
    /// Times the coordinator tries to flag a folder due (`keyPending`) while writers keep
    /// rewriting its record; it stays listed for its owner's client either way.
    public static let keyChangeMarkAttemptsMax = 50
    /// Unfinished key changes a client reads before it starts on them (pages of 1000).
    public static let keyChangesListedMax = 1_000_000
    /// Watch events the embedded store keeps for watches that start in the past.
    public static let metadataHistoryMax = 10_000
    /// Events buffered per watcher before it is cut off as too slow.
    public static let metadataWatchBufferMax = 10_000
}

extension Limits {
    /// Health rounds a coordinator keeps going at once (a round waits on its slowest node).
    public static let healthRoundsInFlightMax = 8
    /// Longest a failover drill's fault may last (its TTL).
    public static let drillSecondsMax = 6 * 3600
    /// Events one drill record keeps (the first ones and the last ones past it).
    public static let drillEventsMax = 200
    /// How long after its fault is lifted a drill waits for full redundancy before it ends
    /// with what did not recover.
    public static let drillRecoverySecondsMax = 1800
}
