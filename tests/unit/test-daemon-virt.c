/* tests/unit/test-daemon-virt.c: netckptd's threads never share an error buffer. Each client
 * and job thread works on its own view of the one libvirt connection (daemon_virt_view); two
 * threads failing lookups at the same time each read their own error, every time. (On one
 * shared struct nc_virt the messages cross within these rounds: checked by hand.) */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/daemon.h"
#include "host/virt.h"

#define ROUNDS 200000

struct worker {
    struct daemon *d;
    char name[32];
    int wrong;
    int lookups;
};

static void *work(void *p)
{
    struct worker *w = p;
    struct nc_virt view;
    struct nc_virt *v = daemon_virt_view(w->d, &view);
    if (!v) {
        w->wrong = -1;
        return NULL;
    }
    for (int i = 0; i < ROUNDS; i++) {
        virDomainPtr dom = NULL;
        if (nc_virt_lookup(v, w->name, &dom) == 0) {
            virDomainFree(dom);
            continue;
        }
        w->lookups++;
        if (!strstr(v->err, w->name))
            w->wrong++;
    }
    daemon_virt_view_done(v);
    return NULL;
}

static void test_views(void **state)
{
    (void)state;
    char dir[] = "/tmp/nc-dvirt-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct nc_virt v;
    memset(&v, 0, sizeof(v));
    assert_int_equal(nc_virt_open(&v, "test:///default", dir), 0);
    struct daemon d;
    memset(&d, 0, sizeof(d));
    d.virt = &v;

    struct worker w[2] = {{.d = &d, .name = "missing-left"}, {.d = &d, .name = "missing-right"}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].lookups, ROUNDS);
        assert_int_equal(w[i].wrong, 0);
    }
    /* a view is a reference: the daemon's own handle still works after they are gone */
    virDomainPtr dom = NULL;
    assert_int_equal(nc_virt_lookup(&v, "test", &dom), 0);
    virDomainFree(dom);
    nc_virt_close(&v);
    /* no daemon connection (unit tests of the job table): no view */
    d.virt = NULL;
    struct nc_virt none;
    assert_null(daemon_virt_view(&d, &none));
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
