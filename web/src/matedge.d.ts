// Types of matedge.js, the API of matedge in browsers and (node.js) in Node. The documents the module
// returns (ModelInfo, MixInfo, Plan, Capabilities) keep the field names of
// their Go structs: snake_case for the module's own (wasm/ABI.md), camelCase
// for Capabilities (named as the browser APIs name them).

export declare const ABI_VERSION: number;

/** Generation defaults: `matedge generate`'s flags, so the same call gives the same tokens in both hosts. */
export declare const DEFAULTS: Readonly<Required<Omit<GenerateOptions, 'signal' | 'draft' | 'draftTokens'>>>;

/** What generate does when the prompt, or the prompt and the text generated, outgrow the model's context. */
export type ContextPolicy = 'refuse' | 'truncate-left' | 'slide';
export declare const CONTEXT_POLICIES: readonly ContextPolicy[];

/** Granularity names, smallest first: 'S' | 'M' | 'L' | 'XL' for the paper's four. */
export type Granularity = string;

/**
 * A mix: one granularity for every layer ('S'), one per layer ('S,M,L,XL' or
 * an array), or 'auto' at load (measure the device and plan).
 */
export type MixSpec = string | Granularity[];

export interface Range { offset: number; length: number }

export type ErrorCode =
  | 'ERR_ARG' | 'ERR_STATE' | 'ERR_FORMAT' | 'ERR_CHECKSUM' | 'ERR_MISSING' | 'ERR_BACKEND' | 'ERR_INTERNAL' // the module's (ABI.md)
  | 'ERR_ABI' | 'ERR_FETCH' | 'ERR_CHANGED' | 'ERR_TRAP' | 'ERR_WORKER' | 'ERR_CLOSED' | 'ERR_PENDING' | 'ERR_DEVICE_LOST' | 'ERR_RUNTIME'
  | 'ERR_ABORTED' // an AbortSignal fired
  | 'ERR_BUDGET'; // mix 'auto': nothing fits the budget (and bestEffort is off)

export declare class MatEdgeError extends Error {
  name: 'MatEdgeError';
  code: ErrorCode;
  /** The export that failed, for the module's errors. */
  call?: string;
}

/** A budget preset (planner.Fast, Balanced, Best), or limits of your own. Every limit set is hard unless bestEffort. */
export type Budget = 'fast' | 'balanced' | 'best' | {
  name?: string;
  /** The slowest predicted decode speed accepted. */
  targetTokensPerSecond?: number;
  maxDownloadBytes?: number;
  /** Applies when navigator.connection reports a downlink. */
  maxDownloadSeconds?: number;
  maxMemoryBytes?: number;
  backend?: 'auto' | 'cpu' | 'gpu';
};

export interface LoadOptions {
  /** The .matw weights file; relative URLs resolve against the page (in Node: a path or URL, against the working directory). */
  model: string | URL;
  /** matedge.wasm; defaults to the one next to matedge.js. */
  wasm?: string | URL;
  /**
   * Run the module in the calling thread instead of a Worker (Node: a worker_threads Worker).
   * Default false where workers exist. A long step then blocks the thread.
   */
  inThread?: boolean;
  /** Default 'auto': measure the device, plan within budget, fetch the plan. */
  mix?: MixSpec;
  /** With mix 'auto'. Default 'balanced'. */
  budget?: Budget;
  /**
   * With mix 'auto': when nothing fits the budget, false (the default) rejects with ERR_BUDGET and the
   * reason (onPlan has seen the plan); true runs the smallest plan instead, with plan.error saying why.
   */
  bestEffort?: boolean;
  /**
   * With mix 'auto': the micro-benchmark (decode steps of S on synthetic weights of the model's shape, so
   * that the plan is made before any weights are fetched) is stored (Cache API) per device and model shape
   * for a week, so a later visit skips it. true measures again and replaces it. Default false.
   */
  remeasure?: boolean;
  /** false: offer the module no GPU (the CPU backend only). Default true. */
  gpu?: boolean;
  /** false: neither read nor write the Cache API. Default true (where the Cache API exists: secure contexts). */
  cache?: boolean;
  /**
   * The CPU path's kernels: 'simd' (default) links kernels.wasm, next to
   * matedge.js (or give its URL), where the engine has SIMD128; 'go' runs the
   * module's plain-Go kernels. Same tokens either way; if kernels.wasm cannot
   * be fetched or compiled the module runs its Go kernels (kernelsReason says why).
   */
  kernels?: 'simd' | 'go' | string | URL;
  onProgress?: (p: Progress) => void;
  /** Aborting it stops the load (its worker and every request in flight); load then rejects with ERR_ABORTED; cached blocks stay. */
  signal?: AbortSignal;
  /**
   * Milliseconds a weights request may go without a byte before it is tried again (default 15000).
   * A stalled, 5xx or broken request is retried 3 times, resuming after the bytes already received.
   */
  stallTimeout?: number;
  /** Called once the device is measured and the plan chosen, before the plan's bytes are fetched. */
  onPlan?: (p: { capabilities: Capabilities; plan: Plan }) => void;
}

/** Every progress event also carries the rate so far and the time left at that rate, for its phase and overall. */
export type Progress = ({
  /** Bytes per second since the phase (and mix) began: cached bytes count, so a cache hit is fast. */
  bytesPerSecond: number;
  /** Seconds left at that rate; null until there is a rate, or when total is unknown. */
  etaSeconds: number | null;
  /** Every phase of this load (or setMix) together: the module, then the weights. */
  overall: OverallProgress;
}) & (
  | { phase: 'wasm'; loaded: number; total: number } // total -1 if unknown (a compressed response)
  | {
      phase: 'weights';
      /** The mix being fetched: with mix 'auto', the plan's (the device is measured without fetching weights). */
      mix: string;
      /** Bytes of the mix the module has (cached, fetched, or there before) and all it reads. */
      loaded: number;
      total: number;
      /** The same, split by the granularity that first needs the bytes. */
      granularities: { name: Granularity; loaded: number; total: number }[];
    });

/** The bytes of a load across its phases, with one rate and one time left. */
export interface OverallProgress {
  /** Bytes the phases have so far: the module's, then the weights' (cached bytes count, as in each phase). */
  loaded: number;
  /**
   * The module's bytes plus the weights' bytes the chosen mix reads (the plan's download_bytes); null
   * until the weights' are known: with mix 'auto', until the plan is made (the 'plan' event, before any
   * weights are fetched); with a fixed mix, until its first 'weights' event.
   */
  total: number | null;
  /** Bytes per second over the time spent inside the phases (planning between them excluded). */
  bytesPerSecond: number;
  /** Seconds left at that rate; null while total or the rate is unknown. */
  etaSeconds: number | null;
}

export interface GenerateOptions {
  maxTokens?: number;
  /** 0: greedy (argmax, lowest id on ties). */
  temperature?: number;
  /** 0: all. */
  topK?: number;
  /** 0 or 1: all. */
  topP?: number;
  seed?: number | bigint;
  /** Default: the plan's backend, else 'auto' (the GPU when the module could open one); 'cpu' with a draft. */
  backend?: 'auto' | 'cpu' | 'gpu';
  /** GPU weights: 'f32' (default) or 'f16' (half the GPU memory; the CPU backend always uses f32). */
  precision?: 'f32' | 'f16';
  /**
   * A mix ('S', 'S,M,S,M', …) turns on self-speculative decoding on the CPU: the draft proposes
   * draftTokens tokens and the model checks them in one pass; 'auto' picks the narrower granularity
   * expected to pay most on this device (measured once). Greedy output is unchanged;
   * sampling uses temperature only (set topK 0 and topP 1).
   */
  draft?: string;
  /**
   * Tokens the draft proposes per round, 1…64; default 0: chosen round by round from the running
   * acceptance rate and the measured cost of draft and verify steps, down to plain decoding
   * where speculation would not pay.
   */
  draftTokens?: number;
  /**
   * The generation ends before the first of these strings appears; its text never shows it
   * (pieces that might begin one are held back until they cannot). Default none.
   */
  stop?: string | string[];
  /**
   * Default 'refuse': a prompt that does not fit the context fails with ERR_ARG, and generation ends
   * with reason 'context' when the context is full. 'truncate-left' cuts whole characters from the
   * prompt's start until it leaves room for maxTokens (at most half the context). 'slide' does the same,
   * and when the context fills, starts again on the last half of the prompt and text so far.
   */
  context?: ContextPolicy;
  /** Aborting stops the generation after the current step; finished and the iterator reject with ERR_ABORTED. */
  signal?: AbortSignal;
  /**
   * CTRL repetition penalty, 1…10 (> 1 discourages repeats; 0 or 1: off): the logit of each token among the
   * last penaltyWindow tokens is divided by it when positive, multiplied when negative. Greedy decoding too.
   * The penalties and minP run on both backends, with the same tokens.
   */
  repetitionPenalty?: number;
  /** −2…2, subtracted from the logit of each token among the last penaltyWindow; 0: off. */
  presencePenalty?: number;
  /** Recent tokens, the prompt's included, the penalties look at; 0 (default): 64. */
  penaltyWindow?: number;
  /** When sampling, keep only tokens at least minP times as likely as the most likely one (0…1; 0: off). */
  minP?: number;
  /**
   * Token routing, 0 < route ≤ 1: each token's FFN width in each layer is picked by the file's
   * routers for a mean of about this fraction of XL's FFN FLOPs, never wider than the mix; runs on
   * either backend, with the same tokens and widths. Needs a file with routers. Default 0: off.
   */
  route?: number;
}

/** A model in this origin's cache. */
export interface CachedModel {
  url: string;
  /** SHA-256 of its header: the same weights under another URL share the blocks. */
  identity: string;
  /** Header and blocks, in bytes. */
  bytes: number;
  blocks: number;
}

export declare class MatEdge {
  static load(options: LoadOptions): Promise<MatEdge>;
  /** Deletes every model this origin has cached. */
  static clearCache(): Promise<void>;
  /** The models this origin has cached, with their sizes; [] where there is no Cache API (Node, http on a LAN). */
  static cachedModels(): Promise<CachedModel[]>;
  /** Deletes one model's cached header and blocks; resolves with the bytes freed (0 if it was not cached). */
  static deleteCachedModel(url: string | URL): Promise<number>;

  info: ModelInfo;
  mix: MixInfo;
  /** The weights file's size in bytes, -1 if the server did not say. */
  fileSize: number;
  /** Bytes of the weights file so far: over the network ({requests, bytes}) and from the cache. */
  downloaded: { requests: number; bytes: number; cachedBytes: number };
  /** The WebGPU device the module may use, or null (gpuReason says why). */
  gpu: GPUInfo | null;
  gpuReason: string;
  /** The kernel set the CPU path runs: 'simd' (kernels.wasm linked) or 'go'. */
  kernels: 'simd' | 'go';
  /** Why the CPU path runs the Go kernels, or ''. */
  kernelsReason: string;
  /** Why the GPU was lost, once it was; generations then run on the CPU. */
  gpuLost: string | null;
  /** With mix 'auto': what was measured, benchmarks included. */
  capabilities: Capabilities | null;
  /** With mix 'auto': the chosen plan. */
  plan: Plan | null;

  /** 'matvit' for a vision model (classify, not generate), 'matformer-lm' for a language model. */
  architecture: 'matformer-lm' | 'matvit';
  readonly isVision: boolean;
  /** A vision model's input: [channels][size][size] pixels, cut into patches of patch×patch. Null for a language model. */
  image: ImageConfig | null;
  /** A vision model's class names (the header's meta.classes; "class i" where it has none). */
  classes: string[];
  /** The index loadIndex loaded, or null. */
  index: (IndexInfo & { bytes: number }) | null;

  /**
   * A vision model: classifies one image with the current mix (switch it with setMix; no reload), and with an
   * index loaded and k > 0 finds its k nearest index entries. A browser image is scaled to fit the model's
   * size (centred, over black) and read as luminance (1 channel) or RGB (3); a Float32Array must already be
   * [C][S][S] in [0, 1] (a wrong length is ERR_ARG). ERR_STATE for a language model, ERR_MISSING while the
   * mix lacks bytes, ERR_BACKEND when backend 'gpu' cannot run it.
   */
  classify(image: ImageInput, options?: ClassifyOptions): Promise<ClassifyResult>;
  /**
   * Loads a retrieval index (.mati): a URL (fetched whole) or its bytes. It must have been built with these
   * very weights (its model_id), else ERR_FORMAT "index built by another model".
   */
  loadIndex(source: string | URL | ArrayBuffer | ArrayBufferView): Promise<IndexInfo & { bytes: number }>;
  /** Index entry i's stored pixels, u8 [C][S][S] (toImageData makes an ImageData of them). ERR_ARG out of range, ERR_STATE for an index without images. */
  indexImage(i: number): Promise<Uint8Array>;

  /** Switches mix live, fetching (or reading from the cache) only the bytes it adds. */
  /** Aborting stops fetching and keeps the current mix; setMix rejects with ERR_ABORTED. */
  setMix(mix: MixSpec, options?: { onProgress?: (p: Progress) => void; signal?: AbortSignal }): Promise<MixInfo>;
  generate(prompt: string, options?: GenerateOptions): Generation;
  /** Destroys the GPUDevice, as a driver reset would, to see recovery at work. */
  simulateDeviceLoss(): Promise<{ lost: boolean }>;
  /** Tests: makes the module trap for real; rejects with ERR_TRAP, and later calls fail until a new load. */
  simulateTrap(): Promise<never>;
  /** Stops the worker; calls in flight reject with ERR_CLOSED. */
  close(): void;
}

/** What classify takes: a browser image, or pixels [C][S][S] in [0, 1]. */
export type ImageInput = ImageData | ImageBitmap | HTMLCanvasElement | OffscreenCanvas | HTMLImageElement | Float32Array;

export interface ClassifyOptions {
  /** Default: the plan's backend, else 'auto'. */
  backend?: 'auto' | 'cpu' | 'gpu';
  /** Nearest index entries to return (0, the default: none). */
  k?: number;
}

/** The module's ImageResult, with class names. */
export interface ClassifyResult {
  class: number;
  className: string;
  /** Softmax of the logits, one per class. */
  probs: number[];
  logits: number[];
  /** The image's embedding, unit length: retrieval compares these by dot product (cosine). */
  embedding: number[];
  backend: 'cpu' | 'gpu';
  /** The k nearest index entries, most similar first (lowest index on ties); [] without an index. */
  neighbors: { index: number; label: number; className: string; score: number }[];
  /** Seconds the module took, in its worker. */
  seconds: number;
  /** Why the GPU was lost while classifying this image (it was classified again on the CPU); absent otherwise. */
  deviceLost?: string;
}

export interface ImageConfig { size: number; patch: number; channels: 1 | 3 }

/** The module's IndexInfo. */
export interface IndexInfo {
  count: number;
  dim: number;
  /** The mix that embedded the entries, one granularity per layer. */
  mix: Granularity[];
  classes: string[];
  /** The weights it was built with: hex SHA-256 of their header's config and entries. */
  model_id: string;
  /** Whether it stores its images (indexImage). */
  has_images: boolean;
}

/** Pixels [C][S][S] in [0, 1] of a browser image, as classify converts it; a Float32Array is returned as is. */
export declare function toPixels(image: ImageInput, shape: { size: number; channels: number }): Float32Array;
/** An S×S ImageData of u8 pixels [C][S][S] (indexImage's), grey for one channel. */
export declare function toImageData(pixels: Uint8Array, image: { size: number; channels: number }): ImageData;

/** One generation: iterate it for text pieces; breaking out cancels it. */
export declare class Generation implements AsyncIterable<string> {
  promptTokens: number[] | null;
  tokens: number[];
  /** With a route: each generated token's granularity index per layer (0 is S), e.g. to colour it. */
  widths: number[][];
  /**
   * With a draft: what self-speculative decoding did so far, updated with
   * each token; null before the first token and without a draft.
   */
  speculation: SpeculationInfo | null;
  text: string;
  backend: 'cpu' | 'gpu' | null;
  /** Why the GPU was lost during this generation (it went on on the CPU), or null. */
  deviceLost: string | null;
  /** Characters cut from the prompt's start to fit the context ('truncate-left', 'slide'). */
  droppedChars: number;
  /** Times the window slid ('slide'). */
  slides: number;
  /**
   * Why it ended: maxTokens ('length'), a stop string ('stop'), the model's end-of-text token ('eot':
   * header.eot; the token is in neither tokens nor text), a full context ('context'), or cancel ('cancelled').
   */
  reason: 'length' | 'stop' | 'eot' | 'context' | 'cancelled' | null;
  seconds: number;
  readonly tokensPerSecond: number;
  /** Resolves with this generation when it ends; rejects with its error. */
  finished: Promise<Generation>;
  cancel(): void;
  [Symbol.asyncIterator](): AsyncIterator<string>;
}

// --- documents (wasm/ABI.md, webgpu/ABI.md, wasm/planner) ---

/**
 * speculation's output (wasm/ABI.md): counts of the module's sequence since
 * its reset (a slide or a lost GPU starts them again). Each round emits its
 * accepted proposals and one token of the mix's own: accepted + rounds tokens.
 */
export interface SpeculationInfo {
  /** The draft's granularity per layer; empty without a draft. */
  draft: Granularity[];
  proposed: number;
  accepted: number;
  /** Draft-and-verify rounds, plain steps (k 0) included. */
  rounds: number;
  /** Draft tokens proposed in the last round; 0: a plain step. */
  k: number;
}

export interface ModelInfo {
  /** 'matvit' for a vision model. */
  architecture: 'matformer-lm' | 'matvit';
  header: {
    /** A vision model: vocab is its number of classes, context its number of patches, image its input. */
    config: { vocab: number; dim: number; layers: number; heads: number; ffn_widths: number[]; context: number; rope_theta: number; norm_eps: number; router_budgets?: number; image?: ImageConfig };
    architecture?: 'matformer-lm' | 'matvit';
    /** The end-of-text token id: generation stops there (reason 'eot'); absent when the model has none. */
    eot?: number;
    tokenizer: unknown;
    entries: { tensor: string; dtype: string; shape: number[]; row_start: number; row_end: number; layer: number; granularity: number; offset: number; length: number; crc32c: number }[];
    data_size: number;
    /** meta.quality, when present, is a JSON list of {mix, non_embedding_params, loss_nats_per_token, bits_per_byte, tokens}. */
    meta?: Record<string, string>;
  };
  data_start: number;
  /** The file's format version: 1 has no header checksum. */
  format_version: number;
  granularities: Granularity[];
  /** ranges[g]: the file ranges uniform granularity g needs. */
  ranges: Range[][];
}

export interface MixInfo {
  mix: Granularity[];
  missing: Range[];
  needed: Range[];
}

export interface GPUInfo {
  name: string;
  vendor: string;
  driver: string;
  /** 'cpu' for a software (fallback) adapter, '' otherwise: browsers do not say more. */
  adapterType: string;
  backend: 'webgpu';
  limits: Record<string, number>;
  features: string[];
}

/** planner.Capabilities (wasm/planner/capabilities.go). 0 means not reported. */
export interface Capabilities {
  source: 'browser';
  adapter: null | {
    vendor: string;
    architecture: string;
    description: string;
    isFallbackAdapter: boolean;
    limits: {
      maxBufferSize: number; maxStorageBufferBindingSize: number; maxStorageBuffersPerShaderStage: number;
      maxComputeWorkgroupStorageSize: number; maxComputeInvocationsPerWorkgroup: number;
      maxComputeWorkgroupSizeX: number; maxComputeWorkgroupsPerDimension: number;
    };
    features: string[];
  };
  deviceMemoryBytes: number;
  logicalCores: number;
  storageQuotaBytes: number;
  network: { effectiveType: string; downlink: number; saveData: boolean };
  /** Bytes of this model already in the cache: free to download, so the planner does not count them. */
  cachedRanges: Range[];
  /** When the benchmarks were measured (ms since the epoch): earlier than now when a stored result was used. */
  benchmarkMeasuredAt: number;
  benchmarks: {
    backend: 'cpu' | 'gpu';
    method: string;
    gbps: number;
    gflops: number;
    stepOverheadMicros: number;
    /** Cost of each GPU dispatch of a decode step, µs (the native host measures it; the browser does not send it). */
    dispatchMicros?: number;
    /** Cost of each matrix row a GPU decode step reads, ns (the same). */
    rowNanos?: number;
    durationMillis: number;
    /** Decode steps of S per second, for a language model (this runtime's addition; not sent to the planner). */
    tokensPerSecond?: number;
    /** Images S classifies per second, for a vision model (the same). */
    imagesPerSecond?: number;
  }[];
}

/** planner.Plan, with the plan export's error and constraint when nothing fits. */
export interface Plan {
  mix: number[];
  mix_names: Granularity[];
  spec: string;
  backend: 'cpu' | 'gpu';
  dtype: string;
  ranges: Range[];
  download_bytes: number;
  memory_bytes: number;
  gpu_memory_bytes: number;
  non_embedding_params: number;
  work: { bytes: number; flops: number };
  /** For a vision model: images per second. */
  predicted_tokens_per_second: number;
  speed_measured: boolean;
  expected_loss?: number;
  /** A vision model: the validation accuracy of the chosen encoder, from the file's quality table. */
  expected_accuracy?: number;
  splits?: unknown[] | null;
  reasons: string[];
  /** Why nothing fits the budget (this is then the smallest plan); '' when the plan fits. */
  error: string;
  constraint: string;
}
