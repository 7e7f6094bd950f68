//! Tile hashes and the proofs a mirror checks, against values published with Go's
//! `golang.org/x/mod/sumdb/tlog` (the reference implementation of tiled logs; the
//! `tlog_tiles` crate under `tollgate_ledger::tiles` is a port of it).
//!
//! What Go publishes, and what it does not: its tile tests (`tile_test.go`,
//! `tlog_test.go`) check tiles against its own hash storage for the records
//! `"leaf %d"`, with **no fixed tile hashes**; the fixed values in that package are
//! `RecordHash("hello world")` (`note_test.go`) and the responses of a real RFC 6962
//! log, Google's Argon 2020 Certificate Transparency log (`ct_test.go` with
//! `testdata/argon2020/*.json`): a signed tree head, entry 10000, its audit path, and
//! a consistency proof from size 3,654,490. Source: github.com/golang/mod at commit
//! b5136e5ba156da612a1efc6e49b55988a134a5e0 (testdata and `ct_test.go`) and
//! 774e77886cf18ba9e220baec8497d65b0c50373f (`note_test.go`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tollgate_ledger::Hash;
use tollgate_ledger::merkle;
use tollgate_ledger::tiles::{self, TileSource};

fn b64(s: &str) -> Hash {
    let v = STANDARD.decode(s).expect("base64");
    Hash(v.try_into().expect("32 bytes"))
}

/// `note_test.go`: `RecordHash([]byte("hello world"))` formats as this. A record hash
/// is what a level-0 tile holds for the record.
const HELLO_WORLD_RECORD_HASH: &str = "TszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=";

#[test]
fn the_level_0_hash_is_gos_record_hash() {
    assert_eq!(
        merkle::leaf_hash(b"hello world"),
        b64(HELLO_WORLD_RECORD_HASH)
    );
    // A tile of one record holds exactly that hash, and its root is that hash.
    let tile = b64(HELLO_WORLD_RECORD_HASH).0.to_vec();
    assert_eq!(tiles::subtree_root(&tile), b64(HELLO_WORLD_RECORD_HASH));
    struct One(Vec<u8>);
    impl TileSource for One {
        fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, String> {
            Ok((level == 0 && index == 0).then(|| self.0.clone()))
        }
    }
    assert_eq!(
        tiles::root(&One(tile), 1).unwrap(),
        b64(HELLO_WORLD_RECORD_HASH)
    );
    assert_ne!(
        merkle::leaf_hash(b"hello world!"),
        b64(HELLO_WORLD_RECORD_HASH)
    );
}

// testdata/argon2020/sth.json
const ARGON_SIZE: u64 = 961_984_013;
const ARGON_ROOT: &str = "dwlueapdd7LaOEnX2W2Wp9v2XE+KzejHRQGHwEx0oaM=";
// ct_test.go: the root at size 3,654,490.
const ARGON_OLD_SIZE: u64 = 3_654_490;
const ARGON_OLD_ROOT: &str = "AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=";
// testdata/argon2020/entries.json: leaf_input of entry 10000.
const ARGON_LEAF_10000: &str = "AAAAAAFelPhqUwAAAAViMIIFXjCCBEagAwIBAgIRAOodHzZdqWIFzYyl/SovhCMwDQYJKoZIhvcNAQELBQAwgZAxCzAJBgNVBAYTAkdCMRswGQYDVQQIExJHcmVhdGVyIE1hbmNoZXN0ZXIxEDAOBgNVBAcTB1NhbGZvcmQxGjAYBgNVBAoTEUNPTU9ETyBDQSBMaW1pdGVkMTYwNAYDVQQDEy1DT01PRE8gUlNBIERvbWFpbiBWYWxpZGF0aW9uIFNlY3VyZSBTZXJ2ZXIgQ0EwHhcNMTcwMjE1MDAwMDAwWhcNMjAwNDE2MjM1OTU5WjBfMSEwHwYDVQQLExhEb21haW4gQ29udHJvbCBWYWxpZGF0ZWQxHTAbBgNVBAsTFFBvc2l0aXZlU1NMIFdpbGRjYXJkMRswGQYDVQQDDBIqLmxhbmRsb3Jkcy5jb20uYXUwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCtPBKKHj4zdrGlCjgTHzb5gx9JCs97DwvBz60f14gDufF2haWbOxyJ0a3opAMsZnOr8HkARVCwxdqG/PTfACcb0QM7FOlzvxGqxataTYiChwvkkif8F9GlJw69HuHgzhusPf1Ytfk3ps1PRC14MkyrS4kwPrk/Le4XdkqRpRw62wG4V6IkbzsNMEOl1H8EgUbfyapdOcVxHjIzvBVy56fBRKG05Fr5wNq3Acak5kYZdNsLhhmlrqAfAjiombW3hb3V5blJdRC0BDdYHv2+zKey6LqJ1FDoXo6IzbzPpC+aifZy47YX+/N1U64Qn5xlDg7mOP8JXfkNJHbU1TJZHif5AgMBAAGjggHhMIIB3TAfBgNVHSMEGDAWgBSQr2o6lFoL2JDqElZz30O0Oija5zAdBgNVHQ4EFgQUNQSLjkoz01I+iuuoC5lgEp0anhcwDgYDVR0PAQH/BAQDAgWgMAwGA1UdEwEB/wQCMAAwHQYDVR0lBBYwFAYIKwYBBQUHAwEGCCsGAQUFBwMCME8GA1UdIARIMEYwOgYLKwYBBAGyMQECAgcwKzApBggrBgEFBQcCARYdaHR0cHM6Ly9zZWN1cmUuY29tb2RvLmNvbS9DUFMwCAYGZ4EMAQIBMFQGA1UdHwRNMEswSaBHoEWGQ2h0dHA6Ly9jcmwuY29tb2RvY2EuY29tL0NPTU9ET1JTQURvbWFpblZhbGlkYXRpb25TZWN1cmVTZXJ2ZXJDQS5jcmwwgYUGCCsGAQUFBwEBBHkwdzBPBggrBgEFBQcwAoZDaHR0cDovL2NydC5jb21vZG9jYS5jb20vQ09NT0RPUlNBRG9tYWluVmFsaWRhdGlvblNlY3VyZVNlcnZlckNBLmNydDAkBggrBgEFBQcwAYYYaHR0cDovL29jc3AuY29tb2RvY2EuY29tMC8GA1UdEQQoMCaCEioubGFuZGxvcmRzLmNvbS5hdYIQbGFuZGxvcmRzLmNvbS5hdTANBgkqhkiG9w0BAQsFAAOCAQEACyHqxUzrexToY7tOv4+kyGPP2D27P1tQpyzeAl1bPObiMhNK2b9vvBLDWAaqm8c0YL1h+DBdLoWzf3xFsIkTCVCjWJTNSNlcYtgRk6or1s7jWsfXzWqsnPjPPmTIOCw7EfH7Yme3oxPs3UUsmShAgPwNohAtL9GqlqMiKM6v1WU3NHt01jEoNP23LRa6KeNK6AH6WHJykzL223IlhgXjHTeuQj6lR+TNrQXJuhwTXYe+20rrpPQxc1Pn7AqnvfWgmicRQ7gdIcr4V6+ecTvLfNOaJ0ZYe5G5giuAAdTm7F57pk04f4gyZNYKrj88mvbkoriN8b6jcWExtrYO6bm2TwAA";
// testdata/argon2020/proof.json: audit_path of leaf 10000.
const ARGON_AUDIT_PATH: [&str; 30] = [
    "T46AmJsuOM/gFiGlUp+IJJebp+1Z5qratFNW7U0JyOQ=",
    "9Jj1Feodn42uRYEfffkV4HF/EIPFQ5Zo9IwkxbQ2uhk=",
    "D53/1oCNebF4J59HHgioovKZxrmrKcVuCVhy3Izg8Ck=",
    "wSFDgGSrsXRPA+1c8WHoAFCsWeUv8NDyP/Q/SgsyVyY=",
    "516/RcwsgdwdzHn18v1dJHqBkgFUbNhmCIWOGjsMJaE=",
    "naTFY2ajLFgrgs5XUl+zJYZnnlJksLGsA1VYwpLfqbY=",
    "mKBRJo6qao+0Kdh/rhGkZUbHUAxMhrtrclrTpIbNjIg=",
    "Co4ueOFE7lpifLio94irxxsv1wFMMaK3tPu2ZQkHlro=",
    "yRgy800K6JMYCC05sWfqF2kvCg2riT/pVM+nEa6V5+0=",
    "n2O38XJZC8/Wpbwi9HhgVizlUyeUHVZvYyQB1607MRc=",
    "go3tAjuNfNSCj87y2Rg1xOroDknGN1eaf3cgvzObf7Q=",
    "8D0Mj3/J7ySSnFb0afIHYXv6rlOhECnsebY6XKi1IR8=",
    "6rcez46ZU8M5vPiWVMAUfJfAOV0pPP/mch/lYzZhj/M=",
    "2rtIeXrPvSdUyHc5maIgSAVB2BzaKaupWxSAiVayDE4=",
    "nniW/IMFQPN5xw8UsHFn7CRStYbm1gLu7NNa6kkRqJQ=",
    "mRPPi7sQS22MduIEyvcNzCNFqIt6kLwYPkNKrVtIcu8=",
    "JvTivzESNS9wHI8aph5a7uieVmtS/p9PciMZ5D6GyOo=",
    "UTyQd+Ym0wY4zG+qK806bBORwi1CSVvFQ/KknnqoZj8=",
    "hXODrqN+ff+U6zPqRQ+ZQKs6im1fPcxIerDSfNwflhE=",
    "II6GE+WY/DrpZzfHztLwkR46o37zVkNLCyPYlf68zA0=",
    "d609kWWcNBllbA8Jb/ad4XAVVGnScLRmtP8FYyr+Dck=",
    "rikBsP0G0gioXRpBFED2CzQdSLrGPvRd0bEcbEZw1rI=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
    "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
    "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
    "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
    "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
];
// testdata/argon2020/consistency.json: from size 3,654,490 to the tree head.
const ARGON_CONSISTENCY: [&str; 30] = [
    "80Sfbj6UQEdVSZCSIgh9NMPj3vCBzcc1A48B2crJSWg=",
    "FZcrgAHUk6nNPviJZq8kEK6jCG1d18pJOFE45ZDc1TQ=",
    "Q67reWXmPBo1UfmwBap4Xi9PMPfFdUSSw3WGlRZdG7k=",
    "eJ7CyhR4PxzBxDIsWgrVYW1eFUb9ndgf46tFmiqVrxA=",
    "QrDwp062Grm5WY8KdrhFsBuuNjGzRox2Jb8PmVL5OYw=",
    "XM4YMjMEdLH/XJam/ZWyaP14k3cmsOtnPsOWQ54lW1s=",
    "SGiBh+jOTGccXU48ZzgQ88lRcBmtB4wz4oSDndv2QTg=",
    "WAS6txqNLYKGL1GdBdpqmV42TTfn6cJsuDsqLXuTCNI=",
    "QFmRS0rirUA7ZN3lxFjDncV+E1OCrn3NUB4RCp+5fzc=",
    "Hdbp7It2XBNZmNDBpCN/KPd7vfVqxgzwOosqVIaEA9E=",
    "mxvHL0ZiblBdD7j7pIa1jlfB0gSqfJ6oX0UGo7L0VsU=",
    "q5hjyvoW6TL/PThgcitpDcSTrnKX2p1+aqscqH2euRA=",
    "jTOWDqt3IHj2NVFeezyBz2ofpru+ztEywqKUAfFclKI=",
    "GIRn0w3HqJdvU9j1WVD//eR6lk2AaTVjyzjsJNP8U88=",
    "x52GJvxG81fnQBrgOTbll1A5tz95/LXK0Ag1NhB0r1I=",
    "6/0OqrcTgc3o5dD5PymmoC96lB9yLPFuTHVvLy8fSGk=",
    "Gf+iKLfcXO5l4JEFmsZvSdG5q1uEeWPfYLrds6pmjz0=",
    "DGuaco+McyM3AfRSF6qX7RwSetwe2ieYJmxw5e9rVx0=",
    "2tQJ9V32hnYp+fdpP6TcjmgJmLeNVOMKM0Ml1kk4cNU=",
    "3PapK+IkyJr8I9yAErAmzuZezzLMzsg+PfeRCgNW8NQ=",
    "s6xiYeejb+wtqHA+URJZ2I/SCPyIW8coP6aB00FJbMY=",
    "z9lSpmdTcr5M5ZzKlc4EPh3SrSypKFdk6JUF/UccaZU=",
    "GXIElfmnRuWfbA4z7ubV/UwlpSRUbUeec7oL5HDDnh0=",
    "pR0SH/NYP6s9+8azWwaeUXA4Ze/3WCIgMfh5YW6wvcE=",
    "f3GuAKYVrF8RBg3s15jvA/YvV9oAliWtzP/imwPhQVA=",
    "WHn8zDxlVgkV+lSlmzaOdfSBrTHoRr5nT3d76q0KKWE=",
    "f2uV2ZxVgULzLPKuZcowRY3ZY7fRlX59iDBjV1R8kNQ=",
    "NzQVjJsvQwbi7WStMr9oFkh9VbHfK7LB6o7WwAqwNTs=",
    "C0LttBeYHZHgL+032JIcJC3CTBIyza/hsbmJUgJfmDI=",
    "nixU5CWTFVDlF4BGdcU6kA7WSYurEpe9jRWc+F/7sOc=",
];

/// The RFC 6962 checks a mirror and a dossier rely on accept a real log's published
/// inclusion and consistency proofs, and refuse them with any one hash flipped.
#[test]
fn a_real_logs_published_proofs_verify() {
    let leaf_input = STANDARD.decode(ARGON_LEAF_10000).unwrap();
    let leaf = merkle::leaf_hash(&leaf_input);
    let root = b64(ARGON_ROOT);
    let path: Vec<Hash> = ARGON_AUDIT_PATH.iter().map(|s| b64(s)).collect();
    merkle::verify_inclusion(&leaf, 10_000, ARGON_SIZE, &path, &root).unwrap();
    let old_root = b64(ARGON_OLD_ROOT);
    let proof: Vec<Hash> = ARGON_CONSISTENCY.iter().map(|s| b64(s)).collect();
    merkle::verify_consistency(ARGON_OLD_SIZE, ARGON_SIZE, &old_root, &root, &proof).unwrap();

    for i in 0..path.len() {
        let mut bad = path.clone();
        bad[i].0[0] ^= 1;
        assert!(merkle::verify_inclusion(&leaf, 10_000, ARGON_SIZE, &bad, &root).is_err());
    }
    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i].0[0] ^= 1;
        assert!(
            merkle::verify_consistency(ARGON_OLD_SIZE, ARGON_SIZE, &old_root, &root, &bad).is_err()
        );
    }
    assert!(merkle::verify_inclusion(&leaf, 10_001, ARGON_SIZE, &path, &root).is_err());
}
