/* The trust decision (trust.h), as a table of cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cairn/storepath.h"
#include "cairn/trust.h"

#define PATH "/nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0"
#define HASH_X "sha256:0cbj5m7kpn64l2f08qcs3d5a5w9gkg8l2rkc49257d8244lri1d6"
#define HASH_Y "sha256:0yjj2midsychhj9rk22w8gh826lnbybv4iyj1dm9m8wlzyx1rs4p"
#define REFS "6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1 pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0"
#define REFS_SWAPPED                                                                               \
	"pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0 6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1"

static struct cairn_seckey k1, k2, k3, g1;
static struct cairn_keyring ring; /* k1 (also as "alias-a"), k2, g1; not k3 */

/* Signers, a bit each. */
enum { S1 = 1, S2 = 2, S3 = 4, SG = 8, SALIAS = 16 };

static int setup(void **state)
{
	(void)state;
	k1.kind = k2.kind = k3.kind = CAIRN_KEY_NIX;
	g1.kind = CAIRN_KEY_GUIX;
	if (cairn_nix_key_generate("farm-a", &k1.u.nix, NULL) ||
	    cairn_nix_key_generate("farm-b", &k2.u.nix, NULL) ||
	    cairn_nix_key_generate("stranger", &k3.u.nix, NULL) ||
	    cairn_guix_key_generate(&g1.u.guix, NULL))
		return -1;
	struct cairn_nix_pubkey p;
	cairn_nix_seckey_public(&k1.u.nix, &p);
	if (cairn_keyring_add_nix(&ring, &p, NULL))
		return -1;
	snprintf(p.name, sizeof(p.name), "alias-a");
	if (cairn_keyring_add_nix(&ring, &p, NULL))
		return -1;
	cairn_nix_seckey_public(&k2.u.nix, &p);
	if (cairn_keyring_add_nix(&ring, &p, NULL))
		return -1;
	struct cairn_guix_pubkey gp;
	cairn_guix_seckey_public(&g1.u.guix, &gp);
	return cairn_keyring_add_guix(&ring, &gp, NULL);
}

static int teardown(void **state)
{
	(void)state;
	cairn_seckey_wipe(&k1);
	cairn_seckey_wipe(&k2);
	cairn_seckey_wipe(&k3);
	cairn_seckey_wipe(&g1);
	cairn_keyring_release(&ring);
	return 0;
}

/* A narinfo for path with a claim, signed by the keys in `sig`. */
static struct cairn_narinfo *mk(const char *path, const char *hash, const char *refs,
				const char *ca, unsigned sig)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "StorePath: %s\nURL: nar/x.nar.xz\nCompression: xz\nNarHash: %s\n"
		 "NarSize: 584\nReferences: %s\n%s%s%s",
		 path, hash, refs, ca ? "CA: " : "", ca ? ca : "", ca ? "\n" : "");
	struct cairn_narinfo *ni = NULL;
	assert_int_equal(cairn_narinfo_parse(text, strlen(text), &ni, NULL), 0);
	if (sig & (S1 | SALIAS))
		assert_int_equal(cairn_narinfo_sign(ni, &k1, NULL, NULL), 0);
	if (sig & SALIAS) {
		/* The same signature again, relabelled as the alias. */
		char relabel[512];
		snprintf(relabel, sizeof(relabel), "alias-a:%s", strchr(ni->sigs[0], ':') + 1);
		assert_int_equal(cairn_narinfo_add_sig(ni, relabel, NULL), 0);
	}
	if (sig & S2)
		assert_int_equal(cairn_narinfo_sign(ni, &k2, NULL, NULL), 0);
	if (sig & S3)
		assert_int_equal(cairn_narinfo_sign(ni, &k3, NULL, NULL), 0);
	if (sig & SG)
		assert_int_equal(cairn_narinfo_sign(ni, &g1, "farm.test", NULL), 0);
	return ni;
}

struct ans_spec {
	enum cairn_trust_state state;
	const char *path; /* NULL: PATH */
	const char *hash;
	const char *refs;
	unsigned sig;
	bool ca; /* carry the CA of the content-addressed path (ca_path) */
};

struct tcase {
	const char *name;
	unsigned k;
	struct ans_spec a[4];
	size_t n;
	int status;
	int chosen;	  /* -1 */
	size_t n_signers; /* of the chosen group */
	bool by_ca;
	const char *reason; /* substring of the reason when refused */
	int group[4];	    /* expected per answer */
};

#define P CAIRN_TRUST_PRESENT
#define A CAIRN_TRUST_ABSENT
#define E CAIRN_TRUST_ERROR
#define I CAIRN_TRUST_INVALID

static const struct tcase cases[] = {
    {"one signer, K=1", 1, {{P, 0, HASH_X, REFS, S1}}, 1, 0, 0, 1, false, 0, {0}},
    {"one signer, K=2", 2, {{P, 0, HASH_X, REFS, S1}}, 1, CAIRN_EUNTRUSTED, -1, 0, false,
     "not enough signatures: 1 of 2", {0}},
    {"k-of-n across servers", 2, {{P, 0, HASH_X, REFS, S1}, {P, 0, HASH_X, REFS, S2}}, 2, 0, 0,
     2, false, 0, {0, 0}},
    {"references in another order are the same claim", 2,
     {{P, 0, HASH_X, REFS, S1}, {P, 0, HASH_X, REFS_SWAPPED, S2}}, 2, 0, 0, 2, false, 0,
     {0, 0}},
    {"two signed claims disagree, K=2", 2, {{P, 0, HASH_X, REFS, S1}, {P, 0, HASH_Y, REFS, S2}},
     2, CAIRN_EHASH, -1, 0, false, "servers disagree", {0, 1}},
    {"two signed claims, K=1: the preferred server's", 1,
     {{P, 0, HASH_Y, REFS, S2}, {P, 0, HASH_X, REFS, S1}}, 2, 0, 0, 1, false, 0, {0, 1}},
    {"references differ: another claim", 2,
     {{P, 0, HASH_X, REFS, S1}, {P, 0, HASH_X, "pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0", S2}},
     2, CAIRN_EHASH, -1, 0, false, "servers disagree", {0, 1}},
    {"unsigned equal to accepted: a byte source (Guix's rule)", 1,
     {{P, 0, HASH_X, REFS, 0}, {P, 0, HASH_X, REFS, S1}}, 2, 0, 0, 1, false, 0, {0, 0}},
    {"unsigned and different: not a source", 1,
     {{P, 0, HASH_Y, REFS, 0}, {P, 0, HASH_X, REFS, S1}}, 2, 0, 1, 1, false, 0, {0, 1}},
    {"one key under two names is one signer", 2, {{P, 0, HASH_X, REFS, SALIAS}}, 1,
     CAIRN_EUNTRUSTED, -1, 0, false, "1 of 2", {0}},
    {"the same key on two servers is one signer", 2,
     {{P, 0, HASH_X, REFS, S1}, {P, 0, HASH_X, REFS, SALIAS}}, 2, CAIRN_EUNTRUSTED, -1, 0, false,
     "1 of 2", {0, 0}},
    {"Nix and Guix signatures mixed across servers", 2,
     {{P, 0, HASH_X, REFS, S1}, {P, 0, HASH_X, REFS, SG}}, 2, 0, 0, 2, false, 0, {0, 0}},
    {"Nix and Guix signatures on one narinfo", 2, {{P, 0, HASH_X, REFS, S1 | SG}}, 1, 0, 0, 2,
     false, 0, {0}},
    {"untrusted key only", 1, {{P, 0, HASH_X, REFS, S3}}, 1, CAIRN_EUNTRUSTED, -1, 0, false,
     "no trusted signature", {0}},
    {"untrusted key does not add to K", 2, {{P, 0, HASH_X, REFS, S1 | S3}}, 1, CAIRN_EUNTRUSTED,
     -1, 0, false, "1 of 2", {0}},
    {"unsigned only", 1, {{P, 0, HASH_X, REFS, 0}}, 1, CAIRN_ENOSIG, -1, 0, false,
     "no trusted signature", {0}},
    {"content-addressed, unsigned, recomputes", 2, {{P, "ca", HASH_X, "", 0, true}}, 1, 0, 0, 0,
     true, 0, {0}},
    {"content-addressed claim that does not recompute", 1,
     {{P, "ca-wrong", HASH_X, "", 0, true}}, 1, CAIRN_ENOSIG, -1, 0, false,
     "no trusted signature", {0}},
    {"narinfo for another path", 1,
     {{P, "/nix/store/6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1", HASH_X, REFS, S1}}, 1,
     CAIRN_EFORMAT, -1, 0, false, "no usable narinfo", {-1}},
    {"absent everywhere", 1, {{A}, {A}}, 2, CAIRN_ENOENT, -1, 0, false, "no server has it",
     {-1, -1}},
    {"down everywhere", 1, {{E}, {E}}, 2, CAIRN_ENET, -1, 0, false, "no server could be asked",
     {-1, -1}},
    {"absent and down", 1, {{E}, {A}}, 2, CAIRN_ENOENT, -1, 0, false, "no server has it",
     {-1, -1}},
    {"garbage and a good answer", 1, {{I}, {P, 0, HASH_X, REFS, S1}}, 2, 0, 0, 1, false, 0,
     {-1, 0}},
    {"down, then two signers", 2, {{E}, {P, 0, HASH_X, REFS, S2}, {P, 0, HASH_X, REFS, S1}}, 3,
     0, 0, 2, false, 0, {-1, 0, 0}},
};

static void run_case(const struct tcase *c, const char *ca_path, const char *ca_text)
{
	struct cairn_trust_answer ans[4];
	struct cairn_narinfo *nis[4] = {0};
	memset(ans, 0, sizeof(ans));
	const char *want_path = PATH;
	for (size_t i = 0; i < c->n; i++) {
		const struct ans_spec *s = &c->a[i];
		ans[i].server = i == 0 ? "http://a" : i == 1 ? "http://b" : "http://c";
		ans[i].state = s->state;
		ans[i].error = s->state == E ? "connection refused" : "not a narinfo";
		if (s->state != P)
			continue;
		const char *path = s->path ? s->path : PATH;
		if (s->path && !strcmp(s->path, "ca"))
			path = want_path = ca_path;
		if (s->path && !strcmp(s->path, "ca-wrong"))
			path = want_path = ca_path;
		nis[i] = mk(path, s->hash, s->refs, s->ca ? ca_text : NULL, s->sig);
		if (s->path && !strcmp(s->path, "ca-wrong")) {
			/* The same CA text on another hash: the path cannot recompute. */
			cairn_narinfo_free(nis[i]);
			char wrong[CAIRN_CA_STR_MAX];
			snprintf(wrong, sizeof(wrong), "fixed:r:%s", HASH_Y);
			nis[i] = mk(path, s->hash, s->refs, wrong, 0);
		}
		ans[i].ni = nis[i];
	}
	struct cairn_store_path sp;
	assert_int_equal(cairn_store_path_parse(want_path, strlen(want_path), "/nix/store", &sp, NULL), 0);
	struct cairn_trust_policy pol = {.keys = &ring, .require_sigs = c->k, .store_dir = "/nix/store"};
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	assert_non_null(v);
	int rc = cairn_trust_decide(ans, c->n, want_path, &sp, &pol, v);
	if (rc != c->status || v->chosen != c->chosen)
		fail_msg("%s: status %d chosen %d (want %d, %d): %s", c->name, rc, v->chosen,
			 c->status, c->chosen, v->reason);
	if (!rc) {
		assert_int_equal(v->groups[v->chosen].n_signers, c->n_signers);
		assert_int_equal(v->by_ca, c->by_ca);
		assert_ptr_equal(v->ni, ans[v->groups[v->chosen].first].ni);
	} else if (c->reason && !strstr(v->reason, c->reason)) {
		fail_msg("%s: reason '%s' lacks '%s'", c->name, v->reason, c->reason);
	}
	for (size_t i = 0; i < c->n; i++)
		if (ans[i].group != c->group[i])
			fail_msg("%s: answer %zu in group %d, want %d", c->name, i, ans[i].group,
				 c->group[i]);
	free(v);
	for (size_t i = 0; i < c->n; i++)
		cairn_narinfo_free(nis[i]);
}

static void test_table(void **state)
{
	(void)state;
	/* A content-addressed path: fixed:r:sha256 of HASH_X, name "ca-test". */
	struct cairn_ca ca;
	char ca_text[CAIRN_CA_STR_MAX], ca_path[CAIRN_STORE_PATH_MAX];
	snprintf(ca_text, sizeof(ca_text), "fixed:r:%s", HASH_X);
	assert_int_equal(cairn_ca_parse(ca_text, strlen(ca_text), &ca, NULL), 0);
	struct cairn_store_path sp;
	assert_int_equal(cairn_ca_make_path(&ca, "ca-test", NULL, "/nix/store", &sp, NULL), 0);
	assert_true(cairn_store_path_format(&sp, "/nix/store", ca_path, sizeof(ca_path)) > 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("case: %s\n", cases[i].name);
		run_case(&cases[i], ca_path, ca_text);
	}
}

/* Why each answer was refused is said per answer, for the user. */
static void test_reasons(void **state)
{
	(void)state;
	struct cairn_narinfo *ni = mk(PATH, HASH_X, REFS, NULL, S3);
	struct cairn_trust_answer ans[2];
	memset(ans, 0, sizeof(ans));
	ans[0] = (struct cairn_trust_answer){.server = "http://a", .state = E, .error = "refused"};
	ans[1] = (struct cairn_trust_answer){.server = "http://b", .state = P, .ni = ni};
	struct cairn_store_path sp;
	assert_int_equal(cairn_store_path_parse(PATH, strlen(PATH), "/nix/store", &sp, NULL), 0);
	struct cairn_trust_policy pol = {.keys = &ring, .require_sigs = 1, .store_dir = "/nix/store"};
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	assert_non_null(v);
	assert_int_equal(cairn_trust_decide(ans, 2, PATH, &sp, &pol, v), CAIRN_EUNTRUSTED);
	assert_string_equal(ans[0].why, "refused");
	assert_non_null(strstr(ans[1].why, "untrusted key 'stranger'"));
	free(v);
	cairn_narinfo_free(ni);
}

int main(void)
{
	if (cairn_init())
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_reasons),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
