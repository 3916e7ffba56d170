//! Master-key rotation with several nodes on one database: every data key
//! is re-wrapped at once, ciphertexts stay as they are, nodes already
//! running keep serving, a node started later needs the new key, and no
//! race leaves a key that only the old master opens.

use super::*;

/// Every message body as stored (sealed).
async fn bodies(s: &PgStore) -> Vec<(uuid::Uuid, String)> {
    sqlx_core::query_as::query_as("SELECT id, body FROM messages ORDER BY id")
        .fetch_all(s.pool())
        .await
        .unwrap()
}

/// The master key id named by each stored data key.
async fn wrapped_by(s: &PgStore) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx_core::query_as::query_as("SELECT wrapped FROM org_keys")
        .fetch_all(s.pool())
        .await
        .unwrap();
    rows.iter()
        .map(|(w,)| careline_crypto::wrapped_by(w).unwrap().to_owned())
        .collect()
}

async fn refused(url: &str, key: &MasterKey) -> String {
    PgStore::connect(url, key.clone(), 2)
        .await
        .err()
        .expect("a node with a retired master key does not start")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_rewraps_every_key_and_running_nodes_keep_serving() {
    let c = cluster(2).await;
    let (a, running) = (&c.nodes[0], &c.nodes[1]);
    // The running node started before these organizations existed: its
    // event relay loads their keys as it hears of them.
    let mut heard = running.bus().subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = {
        let running = running.clone();
        tokio::spawn(async move {
            running
                .relay_events(
                    async {
                        let _ = stopped.await;
                    },
                    &|| {},
                )
                .await
        })
    };
    let x = clinic(a, "Rotating Clinic", 2).await;
    clinic(a, "Second Clinic", 1).await;
    let relayed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while heard.recv().await.unwrap().org_id != x.org.id {}
    });
    relayed
        .await
        .expect("the running node hears of the new organization");
    let (m, u) = &x.members[0];
    let p = login(a, u, at(1)).await;
    let first = a
        .record_contact(contact(&p, m.id, ROUTINE), at(1))
        .await
        .unwrap();
    let sealed = bodies(a).await;

    let new = MasterKey::generate().unwrap();
    assert_eq!(a.rewrap_keys(new.clone()).await.unwrap(), 2);
    assert_eq!(bodies(a).await, sealed, "message ciphertexts are unchanged");
    assert!(wrapped_by(a).await.iter().all(|id| id == new.id()));

    // A node started now needs the new key, and reads what was written before.
    let fresh = PgStore::connect(&c.url, new.clone(), 2).await.unwrap();
    let p = login(&fresh, u, at(2)).await;
    let (_, msgs) = fresh
        .thread(&p, first.message.thread_id, at(2))
        .await
        .unwrap();
    assert_eq!(msgs[0].text, ROUTINE);
    // One started with the old key is refused, naming both keys, on one line.
    let err = refused(&c.url, &c.master).await;
    assert!(
        err.contains(new.id()) && err.contains(c.master.id()) && !err.contains('\n'),
        "{err}"
    );

    // A node that was running keeps the data keys it holds: it reads and
    // writes, and what it writes opens on the new node.
    let (m2, u2) = &x.members[1];
    let p2 = login(running, u2, at(3)).await;
    let late = running
        .record_contact(contact(&p2, m2.id, EMERGENCY), at(3))
        .await
        .unwrap();
    let p2 = login(&fresh, u2, at(3)).await;
    let (_, msgs) = fresh
        .thread(&p2, late.message.thread_id, at(3))
        .await
        .unwrap();
    assert_eq!(msgs[0].text, EMERGENCY);
    // But it cannot create a key only the old master would open.
    let err = running
        .create_org("Late Clinic", at(4))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(new.id()), "{err}");
    fresh.create_org("Late Clinic", at(4)).await.unwrap();
    assert!(wrapped_by(a).await.iter().all(|id| id == new.id()));

    // A rotation from a stale node cannot open the keys: refused, nothing changed.
    let err = running
        .rewrap_keys(MasterKey::generate().unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(new.id()), "{err}");
    assert!(wrapped_by(a).await.iter().all(|id| id == new.id()));
    // Running it again with the new key changes nothing either (an
    // interrupted rotation can be repeated).
    let again = PgStore::connect(&c.url, new.clone(), 2).await.unwrap();
    assert_eq!(again.rewrap_keys(new.clone()).await.unwrap(), 3);
    let now = bodies(a).await;
    assert!(
        sealed.iter().all(|b| now.contains(b)),
        "a ciphertext changed"
    );
    chain_ok(&fresh, x.org.id).await;
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn organizations_created_during_a_rotation_end_up_under_the_new_key() {
    let c = cluster(2).await;
    let (a, b) = (c.nodes[0].clone(), c.nodes[1].clone());
    for i in 0..3 {
        clinic(&a, &format!("Before {i}"), 0).await;
    }
    let new = MasterKey::generate().unwrap();
    let creators: Vec<_> = (0..8)
        .map(|i| {
            let b = b.clone();
            tokio::spawn(async move { b.create_org(&format!("During {i}"), at(1)).await })
        })
        .collect();
    let rotation = {
        let new = new.clone();
        tokio::spawn(async move { a.rewrap_keys(new).await })
    };
    rotation.await.unwrap().unwrap();
    let mut created = 0;
    for t in creators {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            // Refused after the rotation committed: the node must restart.
            Err(e) => assert!(e.to_string().contains(new.id()), "{e}"),
        }
    }
    // Whatever the interleaving, every key is under the new master, so a
    // node started with it opens the database and every organization in it.
    assert!(
        wrapped_by(&c.nodes[0])
            .await
            .iter()
            .all(|id| id == new.id())
    );
    let fresh = PgStore::connect(&c.url, new.clone(), 2).await.unwrap();
    let orgs = fresh.orgs().await.unwrap();
    assert_eq!(orgs.len(), 3 + created);
    for o in orgs {
        fresh.blob_key(o.id).await.unwrap();
    }
}
