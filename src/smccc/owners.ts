/**
 * Owning Entity Numbers (OEN), SMCCC (DEN0028) §2.5, table 2-1 and §6.
 * Bits 29:24 of the function ID. Yielding calls use a different split:
 * OEN 0-1 are legacy pre-SMCCC interfaces and OEN 2-63 all belong to Trusted OSes
 * (TF-A docs/getting_started/rt-svc-writers-guide.rst).
 */

export const OEN = {
  ARM_ARCH: 0,
  CPU: 1,
  SIP: 2,
  OEM: 3,
  STD_SECURE: 4,
  STD_HYP: 5,
  VENDOR_HYP: 6,
  VENDOR_EL3: 7,
  TRUSTED_APP_FIRST: 48,
  TRUSTED_APP_LAST: 49,
  TRUSTED_OS_FIRST: 50,
  TRUSTED_OS_LAST: 63,
} as const;

export const OWNER_COUNT = 64;

/** Config keys for owners (one name per concept: config, trace and docs use these). */
export const OWNER_KEYS = {
  arch: [OEN.ARM_ARCH, OEN.ARM_ARCH],
  cpu: [OEN.CPU, OEN.CPU],
  sip: [OEN.SIP, OEN.SIP],
  oem: [OEN.OEM, OEN.OEM],
  "std-secure": [OEN.STD_SECURE, OEN.STD_SECURE],
  "std-hyp": [OEN.STD_HYP, OEN.STD_HYP],
  "vendor-hyp": [OEN.VENDOR_HYP, OEN.VENDOR_HYP],
  "vendor-el3": [OEN.VENDOR_EL3, OEN.VENDOR_EL3],
  "trusted-app": [OEN.TRUSTED_APP_FIRST, OEN.TRUSTED_APP_LAST],
  "trusted-os": [OEN.TRUSTED_OS_FIRST, OEN.TRUSTED_OS_LAST],
} as const satisfies Record<string, readonly [number, number]>;

export type OwnerKey = keyof typeof OWNER_KEYS;

/** The owner's name as DEN0028 writes it, for fast calls (and for yielding calls with OEN 0-1). */
export function ownerName(oen: number, fast = true): string {
  if (!fast) {
    if (oen === OEN.ARM_ARCH) return "Arm Architecture (legacy yielding)";
    if (oen === OEN.CPU) return "CPU (legacy yielding)";
    return "Trusted OS (yielding)";
  }
  switch (oen) {
    case OEN.ARM_ARCH: return "Arm Architecture";
    case OEN.CPU: return "CPU";
    case OEN.SIP: return "SiP";
    case OEN.OEM: return "OEM";
    case OEN.STD_SECURE: return "Standard Secure";
    case OEN.STD_HYP: return "Standard Hypervisor";
    case OEN.VENDOR_HYP: return "Vendor-specific Hypervisor";
    case OEN.VENDOR_EL3: return "Vendor-specific EL3 Monitor";
  }
  if (oen >= OEN.TRUSTED_APP_FIRST && oen <= OEN.TRUSTED_APP_LAST) return "Trusted Application";
  if (oen >= OEN.TRUSTED_OS_FIRST && oen <= OEN.TRUSTED_OS_LAST) return "Trusted OS";
  return "Reserved";
}

/** Resolves a config owner: a key from OWNER_KEYS or a number 0-63. */
export function ownerRange(owner: OwnerKey | number): readonly [number, number] {
  return typeof owner === "number" ? [owner, owner] : OWNER_KEYS[owner];
}
