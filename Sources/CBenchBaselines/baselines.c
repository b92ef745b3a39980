#include "CBenchBaselines.h"

#include <isa-l.h>
#include <openssl/evp.h>
#include <string.h>

int coffre_bench_openssl_gcm_seal(const uint8_t *key, const uint8_t *in, size_t size, size_t chunk, uint8_t *out) {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t nonce[12] = {0};
    int ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) == 1;
    size_t pieces = (size + chunk - 1) / chunk;
    for (size_t i = 0; ok && i < pieces; i++) {
        size_t count = size - i * chunk < chunk ? size - i * chunk : chunk;
        uint8_t *dst = out + i * (chunk + 16);
        int written = 0, final = 0;
        for (int b = 0; b < 8; b++) nonce[10 - b] = (uint8_t)(i >> (8 * b));
        ok = EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
             EVP_EncryptUpdate(ctx, dst, &written, in + i * chunk, (int)count) == 1 &&
             EVP_EncryptFinal_ex(ctx, dst + written, &final) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, dst + count) == 1;
    }
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}

void coffre_bench_isal_encode(int len, int k, int rows, unsigned char *tables, unsigned char ***sources,
                              unsigned char ***outputs, int sets, int calls) {
    for (int i = 0; i < calls; i++) ec_encode_data(len, k, rows, tables, sources[i % sets], outputs[i % sets]);
}
