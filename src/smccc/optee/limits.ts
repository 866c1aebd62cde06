/**
 * OP-TEE's sizes and the OP-TEE mediator's per-VM limits: their defaults, written once (the config loader,
 * the OP-TEE model and the mediator all take them from here), and the check that the limits keep one VM
 * from starving another of OP-TEE's threads. Pure: no behaviour beyond arithmetic.
 */

export const OPTEE_DEFAULTS = {
  /** Threads serving yielding calls, shared by every guest (optee_os CFG_NUM_THREADS). */
  threads: 8,
  /** Normal-world guests OP-TEE can hold at once (optee_os CFG_VIRT_GUEST_COUNT). */
  maxGuests: 4,
  /** What the modelled OP-TEE itself holds per guest before it answers OUT_OF_MEMORY (its per-guest heap). */
  os: {
    /** Registered shared-memory pages. */
    pagesPerGuest: 16384,
    /** Open sessions. */
    sessionsPerGuest: 1024,
  },
  /** The mediator's per-VM limits (`platform.tee.limits`); callsInFlight is defaultCallsInFlight(). */
  limits: {
    registrations: 256,
    pages: 16384,
    sessions: 256,
  },
} as const;

/** The OP-TEE mediator's per-VM limits (`platform.tee.limits`). */
export interface OpteeMediatorLimits {
  /** Yielding calls a VM may have in OP-TEE at once; more get ETHREAD_LIMIT and are retried by the guest. */
  readonly callsInFlight: number;
  /** Shared-memory registrations per VM. */
  readonly registrations: number;
  /** Registered pages per VM, and the pages all temporary memrefs of one message span together. */
  readonly pages: number;
  /** Open sessions per VM. */
  readonly sessions: number;
}

/**
 * Calls in flight per VM by default: an equal share of OP-TEE's threads (at least one), so that no VM can
 * hold a thread another VM needs.
 */
export function defaultCallsInFlight(threads: number, maxGuests: number): number {
  return Math.max(1, Math.floor(threads / maxGuests));
}

/** The limits of a platform with the default threads and guests. */
export const DEFAULT_MEDIATOR_LIMITS: OpteeMediatorLimits = {
  callsInFlight: defaultCallsInFlight(OPTEE_DEFAULTS.threads, OPTEE_DEFAULTS.maxGuests),
  ...OPTEE_DEFAULTS.limits,
};

export interface OpteeLimitProblem {
  /** The config path of the value to change. */
  readonly path: string;
  readonly message: string;
}

/**
 * Whether OP-TEE's threads suffice for every guest it can hold, each with its calls in flight: when
 * `callsInFlight × maxGuests` exceeds `threads`, one VM's calls (suspended in RPC, say) can hold every
 * thread another VM needs, and that VM gets ETHREAD_LIMIT for as long as the first likes. Paths are those of
 * the config (`platform.tee...`).
 */
export function checkOpteeLimits(tee: { readonly threads: number; readonly maxGuests: number; readonly callsInFlight: number }): OpteeLimitProblem[] {
  const { threads, maxGuests, callsInFlight } = tee;
  if (maxGuests > threads) {
    return [{ path: "platform.tee.maxGuests", message: `${maxGuests} guests cannot each have one of OP-TEE's ${threads} threads: one VM could hold the thread another VM needs (raise threads or lower maxGuests)` }];
  }
  if (callsInFlight * maxGuests > threads) {
    return [
      {
        path: "platform.tee.limits.callsInFlight",
        message: `${callsInFlight} calls in flight for each of ${maxGuests} guests need ${callsInFlight * maxGuests} of OP-TEE's ${threads} threads: one VM could hold threads another VM needs (at most ${Math.floor(threads / maxGuests)})`,
      },
    ];
  }
  return [];
}
