/**
 * smcvisor's identity on the hypervisor service owners. The UUID is fixed for the project (generated
 * once, version 4) so guests and tools can recognise smcvisor the way Linux recognises KVM by its UID.
 */
export const SMCVISOR_UUID = "6c0b3f3e-5d0c-4a5e-9b2c-7f1e8a4d2c61";
export const SMCVISOR_REVISION = { major: 0, minor: 1 } as const;

/** KVM's vendor-hypervisor UID, Linux include/linux/arm-smccc.h ARM_SMCCC_VENDOR_HYP_UID_KVM. */
export const KVM_UUID = "28b46fb6-2ec5-11e9-a9ca-4b564d003a74";
