// Raw C baselines for coffre-bench: plain loops over the C libraries, with no Swift in them.
// The header names no library type, so it does not clash with BoringSSL's headers.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// AES-256-GCM with Debian's OpenSSL 3.0: seals `size` bytes in `chunk`-byte pieces
/// (counter nonces), writing ciphertext then a 16-byte tag per piece. Returns 0 on success.
int coffre_bench_openssl_gcm_seal(const uint8_t *key, const uint8_t *in, size_t size, size_t chunk, uint8_t *out);

/// Calls ISA-L's ec_encode_data `calls` times, call i on buffer set i mod `sets`
/// (`sources[set]` holds k pointers, `outputs[set]` holds `rows` pointers).
void coffre_bench_isal_encode(int len, int k, int rows, unsigned char *tables, unsigned char ***sources,
                              unsigned char ***outputs, int sets, int calls);
