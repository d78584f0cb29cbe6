/*
 * bolt11_test: BOLT #11 decoding against the specification's own example
 * invoices (11-payment-encoding.md, "Examples" and "Examples of Invalid
 * Invoices", both the current examples with payment secrets and the legacy
 * ones without), plus invoices made here with the spec's example key to
 * cover corruptions the spec does not list (unknown network, truncated
 * field, bad signature against `n`, amounts).
 */
#include <secp256k1.h>
#include <secp256k1_recovery.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/bech32.h"
#include "appliance/hash.h"
#include "appliance/hex.h"
#include "appliance/keys.h"
#include "billing/bolt11.h"
#include "tests/lib/testutil.h"
#include "tests/unit/test.h"

#define SPEC_HASH "0001020304050607080900010203040506070809000102030405060708090102"
#define SPEC_PAYEE "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad"
#define SPEC_SECRET "1111111111111111111111111111111111111111111111111111111111111111"
#define SPEC_PRIV "e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734"
#define SPEC_TS 1496314658u
#define CAKE                                                                                               \
	"One piece of chocolate cake, one icecream cone, one pickle, one slice of swiss cheese, one slice of " \
	"salami, one lollypop, one piece of cherry pie, one sausage, one cupcake, and one slice of watermelon"

/* Current spec examples (all with payment secret 0x11..11). */
static const char DONATION[] =
	"lnbc1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcy"
	"q5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twvus8g6rfwvs8qun0dfjkxaq9qrsgq357wnc5r2ueh7ck6q93dj32dlqnls"
	"087fxdwk8qakdyafkq3yap9us6v52vjjsrvywa6rt52cm9r9zqt8r2t7mlcwspyetp5h2tztugp9lfyql";
static const char COFFEE[] =
	"lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqq"
	"syqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut"
	"353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh";
static const char NONSENSE[] =
	"lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqq"
	"syqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpu9qrsgqhtjpauu9ur7fw2thcl4y9vfvh4m9wlfyz2gem29g5ghe2aak"
	"2pm3ps8fdhtceqsaagty2vph7utlgj48u0ged6a337aewvraedendscp573dxr";
static const char HASHED[] =
	"lnbc20m1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsy"
	"qcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqs9qrsgq7ea976txfraylvgzuxs8kgcw23ezlrszfn"
	"h8r6qtfpr6cxga50aj6txm9rxrydzd06dfeawfk6swupvz4erwnyutnjq7x39ymw6j38gp7ynn44";
static const char TESTNET_P2PKH[] =
	"lntb20m1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98k"
	"lysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfpp3x9et2e20v6pu37c5d9vax37wxq72un989qrsgq"
	"dj545axuxtnfemtpwkc45hx9d2ft7x04mt8q7y6t0k2dge9e7h8kpy9p34ytyslj3yu569aalz2xdk8xkd7ltxqld94u8h2esmsmacgpghe9k8";
static const char ROUTES[] =
	"lnbc20m1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsy"
	"qcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqsfpp3qjmp7lwpagxun9pygexvgpjdc4jdj85fr9yq"
	"20q82gphp2nflc7jtzrcazrra7wwgzxqc8u7754cdlpfrmccae92qgzqvzq2ps8pqqqqqqpqqqqq9qqqvpeuqafqxu92d8lr6fvg0r5gv0heee"
	"qgcrqlnm6jhphu9y00rrhy4grqszsvpcgpy9qqqqqqgqqqqq7qqzq9qrsgqdfjcdk6w3ak5pca9hwfwfh63zrrz06wwfya0ydlzpgzxkn5xags"
	"qz7x9j4jwe7yj7vaf2k9lqsdk45kts2fd0fkr28am0u4w95tt2nsq76cqw0";
static const char P2SH[] =
	"lnbc20m1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98k"
	"lysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfppj3a24vwu6r8ejrss3axul8rxldph2q7z99qrsgq"
	"z6qsgww34xlatfj6e3sngrwfy3ytkt29d2qttr8qz2mnedfqysuqypgqex4haa2h8fx3wnypranf3pdwyluftwe680jjcfp438u82xqphf75ym";
static const char P2WPKH[] =
	"lnbc20m1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98k"
	"lysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfppqw508d6qejxtdg4y5r3zarvary0c5xw7k9qrsgq"
	"t29a0wturnys2hhxpner2e3plp6jyj8qx7548zr2z7ptgjjc7hljm98xhjym0dg52sdrvqamxdezkmqg4gdrvwwnf0kv2jdfnl4xatsqmrnsse";
static const char P2WSH[] =
	"lnbc20m1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygshp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98k"
	"lysy043l2ahrqspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqfp4qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0g"
	"dcccefvpysxf3q9qrsgq9vlvyj8cqvq6ggvpwd53jncp9nwc47xlrsnenq2zp70fq83qlgesn4u3uyf4tesfkkwwfg3qs54qe426hp3tz7z6sw"
	"eqdjg05axsrjqp9yrrwc";
static const char PICO[] =
	"lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68yetpd5s9xar0wfjn5gp"
	"c8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgfskx6eqf9hzqnteypzxz7fzypfhg6trddjhygr"
	"cyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcmtv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxsp5zyg3zyg3zyg3zy"
	"g3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygsxqyjw5qcqp2rzjq0gxwkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxmy8zpsgg7jcuwz87fcq"
	"qeuqqqyqqqqlgqqqqn3qq9q9qrsgqrvgkpnmps664wgkp43l22qsgdw4ve24aca4nymnxddlnp8vh9v2sdxlu5ywdxefsfvm0fq3sesf08uf6q9"
	"a2ke0hc9j6z6wlxg5z5kqpu2v9wz";
static const char BEANS[] =
	"lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg"
	"3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q5sqqqqqqqqqqqqqqqqsgq2a25dxl5hrntdtn6zvydt7d66hyzsyhqs4wdynavys42xgl6sgx"
	"9c4g7me86a27t07mdtfry458rtjr0v92cnmswpsjscgt2vcse3sgpz3uapa";
static const char BEANS_UPPER[] =
	"LNBC25M1PVJLUEZPP5QQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQQQSYQCYQ5RQWZQFQYPQDQ5VDHKVEN9V5SXYETPDEESSP5ZYG3ZYG3ZYG3ZYG"
	"3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYG3ZYGS9Q5SQQQQQQQQQQQQQQQQSGQ2A25DXL5HRNTDTN6ZVYDT7D66HYZSYHQS4WDYNAVYS42XGL6SGX"
	"9C4G7ME86A27T07MDTFRY458RTJR0V92CNMSWPSJSCGT2VCSE3SGPZ3UAPA";
static const char BEANS_IGNORED[] =
	"lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zy"
	"g3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q5sqqqqqqqqqqqqqqqqsgq2qrqqqfppnqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqppnqqqq"
	"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqpp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqhpnqqqq"
	"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqhp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqspnqqqq"
	"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqsp4qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnp5qqqq"
	"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqnpkqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqz599y"
	"53s3ujmcfjp5xrdap68qxymkqphwsexhmhr8wdz5usdzkzrse33chw6dlp3jhuhge9ley7j2ayx36kawe7kmgg8sv5ugdyusdcqzn8z9x";
static const char METADATA[] =
	"lnbc10m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdp9wpshjmt9de6zqmt9w3skgct5vysxjmnnd9jx2m"
	"q8q8a04uqsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q2gqqqqqqsgq7hf8he7ecf7n4ffphs6awl9t6676rrclv9"
	"ckg3d3ncn7fct63p6s365duk5wrk202cfy3aj5xnnp5gs3vrdvruverwwq7yzhkf5a3xqpd05wjc";
/* Legacy examples (earlier revision of the specification: no s field). */
static const char LEGACY_DONATION[] =
	"lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6twv"
	"us8g6rfwvs8qun0dfjkxaq8rkx3yf5tcsyz3d73gafnh3cax9rn449d9p5uxz9ezhhypd0elx87sjle52x86fux2ypatgddc6k63n7erqz25le"
	"42c4u4ecky03ylcqca784w";
static const char LEGACY_PICO[] =
	"lnbc9678785340p1pwmna7lpp5gc3xfm08u9qy06djf8dfflhugl6p7lgza6dsjxq454gxhj9t7a0sd8dgfkx7cmtwd68yetpd5s9xar0wfjn5gp"
	"c8qhrsdfq24f5ggrxdaezqsnvda3kkum5wfjkzmfqf3jkgem9wgsyuctwdus9xgrcyqcjcgpzgfskx6eqf9hzqnteypzxz7fzypfhg6trddjhygr"
	"cyqezcgpzfysywmm5ypxxjemgw3hxjmn8yptk7untd9hxwg3q2d6xjcmtv4ezq7pqxgsxzmnyyqcjqmt0wfjjq6t5v4khxxqyjw5qcqp2rzjq0gx"
	"wkzc8w6323m55m4jyxcjwmy7stt9hwkwe2qxmy8zpsgg7jcuwz87fcqqeuqqqyqqqqlgqqqqn3qq9qn07ytgrxxzad9hc4xt3mawjjt8znfv8xzs"
	"cs7007v9gh9j569lencxa8xeujzkxs0uamak9aln6ez02uunw6rd2ht2sqe4hz8thcdagpleym0j";

/* Spec "Examples of Invalid Invoices". */
static const struct {
	const char *what, *inv;
	int err;
} spec_invalid[] = {
	{"unknown feature 100",
	 "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg3z"
	 "yg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q4psqqqqqqqqqqqqqqqqsgqtqyx5vggfcsll4wu246hz02kp85x4katwsk9639we5n5yngc3yhq"
	 "km35jnjw4len8vrnqnf5ejh0mzj9n3vz2px97evektfm2l6wqccp3y7372",
	 APP_EUNSUPPORTED},
	{"bad checksum",
	 "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuy"
	 "k0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrnt",
	 APP_ECHECKSUM},
	{"no separator",
	 "pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuyk0sg5g70me"
	 "25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny",
	 APP_EPARSE},
	{"mixed case",
	 "LNBC2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpquwpc4curk03c9wlrswe78q4eyqc7d8d0xqzpuy"
	 "k0sg5g70me25alkluzd2x62aysf2pyy8edtjeevuv4p2d5p76r4zkmneet7uvyakky2zr4cusd45tftc9c5fh0nnqpnl2jfll544esqchsrny",
	 APP_EPARSE},
	{"signature not recoverable",
	 "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zy"
	 "g3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgqwgt7mcn5yqw3yx0w94pswkpq6j9uh6xfqqqtsk4tnarugeektd4hg5975x9am52rz"
	 "4qskukxdmjemg92vvqz8nvmsye63r5ykel43pgz7zq0g2",
	 APP_EBADSIG},
	{"string too short",
	 "lnbc1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdpl2pkx2ctnv5sxxmmwwd5kgetjypeh2ursdae8g6na6hl"
	 "h",
	 APP_EPARSE},
	{"invalid multiplier",
	 "lnbc2500x1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5zyg3zyg3zy"
	 "g3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgqrrzc4cvfue4zp3hggxp47ag7xnrlr8vgcmkjxk3j5jqethnumgkpqp23z9jclu3v0"
	 "a7e0aruz366e9wqdykw6dxhdzcjjhldxq0w6wgqcnu43j",
	 APP_ERANGE},
	{"sub-millisatoshi precision",
	 "lnbc2500000001p1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpusp5z"
	 "yg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9qrsgq0lzc236j96a95uv0m3umg28gclm5lqxtqqwk32uuk4k6673k6n5kf"
	 "vx3d2h8s295fad45fdhmusm8sjudfhlf6dcsxmfvkeywmjdkxcp99202x",
	 APP_ERANGE},
};

static struct bolt11 *dec(const char *s)
{
	struct bolt11 *inv = NULL;
	const char *why = NULL;
	int r = bolt11_decode(&inv, &why, s, strlen(s));
	CHECKM(r == 0, "decode %.24s...: %d %s", s, r, why ? why : "");
	return inv;
}

static int hex_eq(const uint8_t *b, size_t n, const char *hex)
{
	char buf[256];
	if (2 * n + 1 > sizeof buf)
		return 0;
	hex_encode(buf, b, n);
	return strcmp(buf, hex) == 0;
}

/* Fields every current spec example shares. */
static void check_common(const struct bolt11 *inv, int with_secret)
{
	CHECK(inv->network == BOLT11_MAINNET);
	CHECK(inv->timestamp == SPEC_TS);
	CHECK(hex_eq(inv->payment_hash, 32, SPEC_HASH));
	CHECK(hex_eq(inv->payee, 33, SPEC_PAYEE));
	CHECK(!inv->has_payee_field);
	CHECK(inv->has_payment_secret == with_secret);
	if (with_secret)
		CHECK(hex_eq(inv->payment_secret, 32, SPEC_SECRET));
}

static void test_donation(void)
{
	struct bolt11 *inv = dec(DONATION);
	if (!inv)
		return;
	check_common(inv, 1);
	CHECK(!inv->has_amount);
	CHECK_STR(inv->description, "Please consider supporting this project");
	CHECK(inv->expiry == 3600 && !inv->has_expiry);
	CHECK(inv->min_final_cltv_expiry == 18);
	CHECK(bolt11_feature(inv, 8) && bolt11_feature(inv, 14) && !bolt11_feature(inv, 9));
	CHECK(inv->recovery_id == 1);
	CHECK(hex_eq(inv->signature, 64,
		     "8d3ce9e28357337f62da0162d9454df827f83cfe499aeb1c1db349d4d81127425e434ca29929406c23bba1ae8ac6ca32880b"
		     "38d4bf6ff874024cac34ba9625f1"));
	CHECK(bolt11_expires_at(inv) == SPEC_TS + 3600);
	CHECK(!bolt11_expired(inv, SPEC_TS + 3600) && bolt11_expired(inv, SPEC_TS + 3601));
	CHECK_OK(bolt11_check_description(inv, "Please consider supporting this project", 39));
	CHECK_ERR(bolt11_check_description(inv, "Please", 6), APP_EREFUSED);
	bolt11_free(inv);

	inv = dec(LEGACY_DONATION);
	if (!inv)
		return;
	check_common(inv, 0);
	CHECK(!inv->has_amount && !inv->has_features);
	CHECK_STR(inv->description, "Please consider supporting this project");
	CHECK(inv->recovery_id == 0);
	CHECK(hex_eq(inv->signature, 64,
		     "38ec6891345e204145be8a3a99de38e98a39d6a569434e1845c8af7205afcfcc7f425fcd1463e93c32881ead0d6e356d467e"
		     "c8c02553f9aab15e5738b11f127f"));
	bolt11_free(inv);
}

static void test_coffee(void)
{
	struct bolt11 *inv = dec(COFFEE);
	if (!inv)
		return;
	check_common(inv, 1);
	CHECK(inv->has_amount && inv->amount_msat == 250000000); /* 2500u = 0.0025 BTC */
	CHECK_STR(inv->description, "1 cup coffee");
	CHECK(inv->has_expiry && inv->expiry == 60);
	CHECK(bolt11_expired(inv, SPEC_TS + 61) && !bolt11_expired(inv, SPEC_TS + 60));
	CHECK(inv->recovery_id == 1);
	bolt11_free(inv);

	inv = dec(NONSENSE);
	if (!inv)
		return;
	check_common(inv, 1);
	CHECK(inv->amount_msat == 250000000);
	CHECK_STR(inv->description, "\xe3\x83\x8a\xe3\x83\xb3\xe3\x82\xbb\xe3\x83\xb3\xe3\x82\xb9 1\xe6\x9d\xaf");
	CHECK(inv->expiry == 60);
	bolt11_free(inv);
}

static void test_hashed_and_fallbacks(void)
{
	static const struct {
		const char *inv;
		enum bolt11_network net;
		uint8_t version;
		const char *addr;
	} fb[] = {
		{TESTNET_P2PKH, BOLT11_TESTNET, 17, "3172b5654f6683c8fb146959d347ce303cae4ca7"},
		{P2SH, BOLT11_MAINNET, 18, "8f55563b9a19f321c211e9b9f38cdf686ea07845"},
		{P2WPKH, BOLT11_MAINNET, 0, "751e76e8199196d454941c45d1b3a323f1433bd6"},
		{P2WSH, BOLT11_MAINNET, 0, "1863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"},
	};
	struct bolt11 *inv = dec(HASHED);
	if (!inv)
		return;
	check_common(inv, 1);
	CHECK(inv->amount_msat == 2000000000ULL); /* 20m */
	CHECK(!inv->has_description && inv->has_description_hash);
	CHECK(hex_eq(inv->description_hash, 32, "3925b6f67e2c340036ed12093dd44e0368df1b6ea26c53dbe4811f58fd5db8c1"));
	CHECK_OK(bolt11_check_description(inv, CAKE, strlen(CAKE)));
	CHECK_ERR(bolt11_check_description(inv, CAKE, strlen(CAKE) - 1), APP_EREFUSED);
	bolt11_free(inv);
	for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) {
		inv = dec(fb[i].inv);
		if (!inv)
			continue;
		CHECK(inv->network == fb[i].net);
		CHECK(inv->amount_msat == 2000000000ULL);
		CHECK(hex_eq(inv->payment_hash, 32, SPEC_HASH));
		CHECK(hex_eq(inv->payee, 33, SPEC_PAYEE));
		CHECK(inv->has_description_hash);
		CHECKM(inv->nfallbacks == 1 && inv->fallbacks[0].version == fb[i].version &&
			       hex_eq(inv->fallbacks[0].addr, inv->fallbacks[0].len, fb[i].addr),
		       "fallback %zu", i);
		bolt11_free(inv);
	}
}

static void test_routes(void)
{
	struct bolt11 *inv = dec(ROUTES);
	if (!inv)
		return;
	check_common(inv, 1);
	CHECK(inv->nfallbacks == 1 && inv->fallbacks[0].version == 17 &&
	      hex_eq(inv->fallbacks[0].addr, 20, "04b61f7dc1ea0dc99424464cc4064dc564d91e89"));
	CHECK(inv->nroutes == 1 && inv->routes[0].nhops == 2);
	if (inv->nroutes == 1 && inv->routes[0].nhops == 2) {
		const struct bolt11_hop *h = inv->routes[0].hops;
		CHECK(hex_eq(h[0].pubkey, 33, "029e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255"));
		CHECK(h[0].short_channel_id == 0x0102030405060708ULL);
		CHECK(h[0].fee_base_msat == 1 && h[0].fee_proportional_millionths == 20 && h[0].cltv_expiry_delta == 3);
		CHECK(hex_eq(h[1].pubkey, 33, "039e03a901b85534ff1e92c43c74431f7ce72046060fcf7a95c37e148f78c77255"));
		CHECK(h[1].short_channel_id == 0x030405060708090aULL);
		CHECK(h[1].fee_base_msat == 2 && h[1].fee_proportional_millionths == 30 && h[1].cltv_expiry_delta == 4);
	}
	CHECK(inv->recovery_id == 0);
	bolt11_free(inv);
}

static void test_pico(void)
{
	const char *both[] = {PICO, LEGACY_PICO};
	for (int k = 0; k < 2; k++) {
		struct bolt11 *inv = dec(both[k]);
		if (!inv)
			continue;
		CHECK(inv->amount_msat == 967878534ULL);
		CHECK(inv->timestamp == 1572468703);
		CHECK(hex_eq(inv->payment_hash, 32, "462264ede7e14047e9b249da94fefc47f41f7d02ee9b091815a5506bc8abf75f"));
		CHECK_STR(inv->description,
			  "Blockstream Store: 88.85 USD for Blockstream Ledger Nano S x 1, \"Back In My Day\" Sticker x 2, "
			  "\"I Got Lightning Working\" Sticker x 2 and 1 more items");
		CHECK(inv->expiry == 604800);
		CHECK(inv->has_min_final_cltv_expiry && inv->min_final_cltv_expiry == 10);
		CHECK(inv->nroutes == 1 && inv->routes[0].nhops == 1);
		if (inv->nroutes == 1) {
			const struct bolt11_hop *h = inv->routes[0].hops;
			CHECK(hex_eq(h->pubkey, 33, "03d06758583bb5154774a6eb221b1276c9e82d65bbaceca806d90e20c108f4b1c7"));
			CHECK(h->short_channel_id == ((589390ULL << 40) | (3312ULL << 16) | 1));
			CHECK(h->fee_base_msat == 1000 && h->fee_proportional_millionths == 2500 &&
			      h->cltv_expiry_delta == 40);
		}
		CHECK(hex_eq(inv->payee, 33, SPEC_PAYEE));
		CHECK(inv->has_payment_secret == (k == 0));
		bolt11_free(inv);
	}
}

static void test_beans(void)
{
	const char *all[] = {BEANS, BEANS_UPPER, BEANS_IGNORED};
	for (int k = 0; k < 3; k++) {
		struct bolt11 *inv = dec(all[k]);
		if (!inv)
			continue;
		check_common(inv, 1);
		CHECK(inv->amount_msat == 2500000000ULL);
		CHECK_STR(inv->description, "coffee beans");
		CHECK(bolt11_feature(inv, 8) && bolt11_feature(inv, 14) && bolt11_feature(inv, 99));
		CHECK(!bolt11_feature(inv, 9) && !bolt11_feature(inv, 98) && !bolt11_feature(inv, 100));
		CHECK_STR(inv->hrp, "lnbc25m");
		if (k == 2) {
			/* "2" (type 10, unknown), f version 19, p 51, p 53, h 51, h 53, s 51, s 53, n 52, n 54 */
			static const uint8_t types[] = {10, 9, 1, 1, 23, 23, 16, 16, 19, 19};
			static const uint16_t lens[] = {3, 33, 51, 53, 51, 53, 51, 53, 52, 54};
			CHECK(inv->nskipped == 10);
			for (size_t i = 0; i < inv->nskipped && i < 10; i++)
				CHECKM(inv->skipped[i].type == types[i] && inv->skipped[i].data_length == lens[i],
				       "skipped[%zu] = %u/%u", i, inv->skipped[i].type, inv->skipped[i].data_length);
			CHECK(inv->nfallbacks == 0);
		} else {
			CHECK(inv->nskipped == 0);
		}
		bolt11_free(inv);
	}
}

static void test_metadata(void)
{
	struct bolt11 *inv = dec(METADATA);
	if (!inv)
		return;
	check_common(inv, 1);
	CHECK(inv->amount_msat == 1000000000ULL);
	CHECK_STR(inv->description, "payment metadata inside");
	CHECK(inv->has_metadata && hex_eq(inv->metadata, inv->metadata_len, "01fafaf0"));
	CHECK(bolt11_feature(inv, 8) && bolt11_feature(inv, 14) && bolt11_feature(inv, 48));
	char *json;
	size_t n;
	CHECK_OK(bolt11_to_json(&json, &n, inv));
	if (json) {
		CHECK(strstr(json, "\"metadata\":\"01fafaf0\"") != NULL);
		CHECK(strstr(json, "\"features\":[8,14,48]") != NULL);
		CHECK(strstr(json, "\"amount_msat\":1000000000") != NULL);
		CHECK(strstr(json, "\"payee_from\":\"signature\"") != NULL);
		free(json);
	}
	bolt11_free(inv);
}

static void test_spec_invalid(void)
{
	for (size_t i = 0; i < sizeof spec_invalid / sizeof spec_invalid[0]; i++) {
		struct bolt11 *inv = NULL;
		const char *why = NULL;
		int r = bolt11_decode(&inv, &why, spec_invalid[i].inv, strlen(spec_invalid[i].inv));
		CHECKM(r == spec_invalid[i].err && inv == NULL && why != NULL, "%s: got %d (%s), expected %d",
		       spec_invalid[i].what, r, why ? why : "-", spec_invalid[i].err);
		bolt11_free(inv);
	}
}

/* --- invoices made here with the spec's key (a minimal encoder for tests) ---------------------- */

struct builder {
	uint8_t w[4096];
	size_t n;
};

static void put_u(struct builder *b, uint64_t v, size_t nwords)
{
	for (size_t i = 0; i < nwords; i++)
		b->w[b->n + i] = (uint8_t)((v >> (5 * (nwords - 1 - i))) & 31);
	b->n += nwords;
}

static void put_field(struct builder *b, uint8_t type, const uint8_t *data, size_t len)
{
	uint8_t tmp[1100];
	size_t nw = 0;
	if (bech32_convert_bits(tmp, &nw, 5, data, len, 8, 1) != 0)
		return;
	b->w[b->n++] = type;
	put_u(b, nw, 2);
	memcpy(b->w + b->n, tmp, nw);
	b->n += nw;
}

static void put_field_u(struct builder *b, uint8_t type, uint64_t v, size_t nwords)
{
	b->w[b->n++] = type;
	put_u(b, nwords, 2);
	put_u(b, v, nwords);
}

/* Signs hrp + words with the spec key; returns the invoice (free()). `flip` flips a data byte after signing. */
static char *sign_invoice(const char *hrp, const struct builder *b, int flip_word)
{
	const secp256k1_context *ctx = keys_ctx();
	uint8_t sec[32], packed[4096], h[32], sig[64];
	size_t n;
	int recid;
	secp256k1_ecdsa_recoverable_signature rs;
	if (tu_unhex32(sec, SPEC_PRIV) || bech32_convert_bits(packed, &n, 8, b->w, b->n, 5, 1))
		return NULL;
	struct hash_sha256_ctx *hc = hash_sha256_new();
	hash_sha256_update(hc, hrp, strlen(hrp));
	hash_sha256_update(hc, packed, n);
	hash_sha256_final(hc, h);
	hash_sha256_free(hc);
	if (!secp256k1_ecdsa_sign_recoverable(ctx, &rs, h, sec, NULL, NULL))
		return NULL;
	secp256k1_ecdsa_recoverable_signature_serialize_compact(ctx, sig, &recid, &rs);
	uint8_t sig65[65], all[4200];
	memcpy(sig65, sig, 64);
	sig65[64] = (uint8_t)recid;
	memcpy(all, b->w, b->n);
	size_t sw;
	if (bech32_convert_bits(all + b->n, &sw, 5, sig65, 65, 8, 1) || sw != 104)
		return NULL;
	if (flip_word >= 0)
		all[flip_word] ^= 1;
	char *out = NULL;
	if (bech32_encode_words(&out, hrp, all, b->n + sw))
		return NULL;
	return out;
}

static void base_fields(struct builder *b, uint64_t ts)
{
	uint8_t ph[32], ps[32];
	memset(ps, 0x11, 32);
	CHECK_OK(tu_unhex32(ph, SPEC_HASH));
	b->n = 0;
	put_u(b, ts, 7);
	put_field(b, 1, ph, 32);
	put_field(b, 16, ps, 32);
	put_field(b, 13, (const uint8_t *)"job quote", 9);
}

static int decode_err(const char *s, const char **why)
{
	struct bolt11 *inv = NULL;
	int r = bolt11_decode(&inv, why, s, strlen(s));
	bolt11_free(inv);
	return r;
}

static void test_made_here(void)
{
	struct builder b;
	const char *why;
	uint8_t payee[33];
	size_t n;
	uint8_t *pk = tu_unhex(SPEC_PAYEE, &n);
	memcpy(payee, pk, 33);
	free(pk);

	/* regtest with n field, expiry, c, metadata */
	base_fields(&b, 1700000000);
	put_field(&b, 19, payee, 33);
	put_field_u(&b, 6, 600, 2);
	put_field_u(&b, 24, 40, 2);
	char *s = sign_invoice("lnbcrt21u", &b, -1);
	struct bolt11 *inv = s ? dec(s) : NULL;
	if (inv) {
		CHECK(inv->network == BOLT11_REGTEST);
		CHECK(inv->amount_msat == 2100000);
		CHECK(inv->has_payee_field && hex_eq(inv->payee, 33, SPEC_PAYEE));
		CHECK(inv->expiry == 600 && inv->min_final_cltv_expiry == 40);
		CHECK(bolt11_expires_at(inv) == 1700000600);
		CHECK_STR(inv->description, "job quote");
	}
	bolt11_free(inv);
	/* the same with "lightning:" in front */
	if (s) {
		char buf[2048];
		snprintf(buf, sizeof buf, "lightning:%s", s);
		inv = dec(buf);
		bolt11_free(inv);
	}
	free(s);

	/* signet, testnet prefixes and all multipliers */
	static const struct {
		const char *hrp;
		enum bolt11_network net;
		uint64_t msat;
	} amounts[] = {
		{"lntbs1m", BOLT11_SIGNET, 100000000},	{"lntb1", BOLT11_TESTNET, 100000000000ULL},
		{"lnbc10n", BOLT11_MAINNET, 1000},	{"lnbc10p", BOLT11_MAINNET, 1},
		{"lnbcrt1n", BOLT11_REGTEST, 100},	{"lnbc184467440p", BOLT11_MAINNET, 18446744},
	};
	for (size_t i = 0; i < sizeof amounts / sizeof amounts[0]; i++) {
		base_fields(&b, 1700000000);
		s = sign_invoice(amounts[i].hrp, &b, -1);
		inv = s ? dec(s) : NULL;
		CHECKM(inv && inv->network == amounts[i].net && inv->amount_msat == amounts[i].msat, "%s", amounts[i].hrp);
		bolt11_free(inv);
		free(s);
	}

	/* refused: unknown network, bad amounts */
	static const struct {
		const char *hrp;
		int err;
	} bad_hrp[] = {
		{"lnsb10u", APP_EUNSUPPORTED}, {"lnxx", APP_EUNSUPPORTED},  {"bc10u", APP_EUNSUPPORTED},
		{"lnbc010u", APP_ERANGE},      {"lnbc0", APP_ERANGE},	     {"lnbc1x", APP_ERANGE},
		{"lnbc11p", APP_ERANGE},       {"lnbc1um", APP_ERANGE},	     {"lnbc999999999999", APP_ERANGE},
		{"lnbc99999999999999999999m", APP_ERANGE},
	};
	for (size_t i = 0; i < sizeof bad_hrp / sizeof bad_hrp[0]; i++) {
		base_fields(&b, 1700000000);
		s = sign_invoice(bad_hrp[i].hrp, &b, -1);
		int r = s ? decode_err(s, &why) : -999;
		CHECKM(r == bad_hrp[i].err, "%s: %d (%s)", bad_hrp[i].hrp, r, why ? why : "");
		free(s);
	}

	/* bad signature: n field present and a data word changed after signing */
	base_fields(&b, 1700000000);
	put_field(&b, 19, payee, 33);
	s = sign_invoice("lnbcrt1u", &b, 20);
	CHECK(s && decode_err(s, &why) == APP_EBADSIG);
	free(s);
	/* changed without n: recovers some other key, so the payee differs */
	base_fields(&b, 1700000000);
	s = sign_invoice("lnbcrt1u", &b, 20);
	inv = NULL;
	if (s && bolt11_decode(&inv, &why, s, strlen(s)) == 0)
		CHECK(!hex_eq(inv->payee, 33, SPEC_PAYEE));
	bolt11_free(inv);
	free(s);
	/* recovery id > 3 */
	base_fields(&b, 1700000000);
	s = sign_invoice("lnbcrt1u", &b, -1);
	if (s) {
		/* the last signature word holds the low bits of the recovery id byte: set a high bit */
		uint8_t *w;
		size_t nw;
		char hrp[BECH32_HRP_MAX + 1];
		if (bech32_decode_words(hrp, &w, &nw, s, strlen(s), 8192) == 0) {
			w[nw - 2] |= 0x04; /* word 102's low 3 bits are the recovery id byte's top bits */
			char *t = NULL;
			if (bech32_encode_words(&t, hrp, w, nw) == 0)
				CHECK(decode_err(t, &why) == APP_EBADSIG);
			free(t);
			free(w);
		}
		free(s);
	}

	/* truncated tagged field: the d field claims more words than there are */
	base_fields(&b, 1700000000);
	b.w[b.n - 16] = 31; /* d's data_length low word: 31 words > the 15 left */
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EPARSE && why && strstr(why, "truncated"));
	free(s);
	/* a field header cut short right before the signature */
	base_fields(&b, 1700000000);
	b.w[b.n++] = 13;
	b.w[b.n++] = 0;
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EPARSE);
	free(s);
	/* no p field */
	b.n = 0;
	put_u(&b, 1700000000, 7);
	put_field(&b, 13, (const uint8_t *)"x", 1);
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EPARSE);
	free(s);
	/* neither d nor h; both d and h */
	b.n = 0;
	put_u(&b, 1700000000, 7);
	uint8_t z[32] = {0};
	put_field(&b, 1, z, 32);
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EPARSE);
	free(s);
	base_fields(&b, 1700000000);
	put_field(&b, 23, z, 32);
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EPARSE);
	free(s);
	/* duplicate p */
	base_fields(&b, 1700000000);
	put_field(&b, 1, z, 32);
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EPARSE);
	free(s);
	/* description with invalid UTF-8, with NUL */
	b.n = 0;
	put_u(&b, 1700000000, 7);
	put_field(&b, 1, z, 32);
	put_field(&b, 13, (const uint8_t *)"\xc3\x28", 2);
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EPARSE);
	free(s);
	b.n = 0;
	put_u(&b, 1700000000, 7);
	put_field(&b, 1, z, 32);
	put_field(&b, 13, (const uint8_t *)"a\0b", 3);
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EPARSE);
	free(s);
	/* feature dependency: basic_mpp (17) without payment_secret */
	base_fields(&b, 1700000000);
	put_field_u(&b, 5, 1ULL << 17 | 1ULL << 8, 4);
	s = sign_invoice("lnbcrt1u", &b, -1);
	CHECK(s && decode_err(s, &why) == APP_EUNSUPPORTED);
	free(s);
	/* over-long invoice */
	char *big = malloc(BOLT11_MAX_LEN + 2);
	if (big) {
		memset(big, 'q', BOLT11_MAX_LEN + 1);
		memcpy(big, "lnbc1", 5);
		big[BOLT11_MAX_LEN + 1] = 0;
		CHECK(decode_err(big, &why) == APP_ETOOBIG);
		free(big);
	}
}

/* Every one-character corruption of a spec invoice is refused or changes what it decodes to. */
static void test_corruptions(void)
{
	static const char set[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
	size_t len = strlen(COFFEE);
	char *s = malloc(len + 1);
	int refused = 0, total = 0;
	if (!s)
		return;
	for (size_t i = 0; i < len; i += 7) {
		memcpy(s, COFFEE, len + 1);
		s[i] = s[i] == 'q' ? 'p' : 'q';
		if (strchr(set, COFFEE[i]) == NULL && i > 10)
			continue;
		struct bolt11 *inv = NULL;
		total++;
		if (bolt11_decode(&inv, NULL, s, len) != 0)
			refused++;
		bolt11_free(inv);
	}
	CHECKM(refused == total, "%d of %d corruptions refused", refused, total);
	free(s);
}

int main(void)
{
	RUN(test_donation);
	RUN(test_coffee);
	RUN(test_hashed_and_fallbacks);
	RUN(test_routes);
	RUN(test_pico);
	RUN(test_beans);
	RUN(test_metadata);
	RUN(test_spec_invalid);
	RUN(test_made_here);
	RUN(test_corruptions);
	return test_summary();
}
