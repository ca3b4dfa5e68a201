//! The service's gRPC API as a terminal speaks it, for the tests that call it directly:
//! mutual-TLS channels with a terminal's identity, and the key material of a world's cards and
//! of its terminals' readers.

use std::path::Path;

use onshi_proto::v1::confirmation_client::ConfirmationClient;
use rsa::pkcs8::DecodePrivateKey;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::{Result, World};

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))
}

/// A TLS channel to the service at `url`, trusting the world's network CA, with the client
/// identity in `terminal_dir` (`client.pem`, `client.key.pem`) when one is given. The outer
/// error is the set-up (a file missing); the inner one is the connection, which tests of
/// refused terminals expect to fail.
pub async fn channel(
    world: &World,
    url: &str,
    terminal_dir: Option<&Path>,
) -> Result<std::result::Result<Channel, tonic::transport::Error>> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(
            &world.dir.join("network-ca/ca.pem"),
        )?))
        .domain_name("localhost");
    if let Some(dir) = terminal_dir {
        tls = tls.identity(Identity::from_pem(
            read(&dir.join("client.pem"))?,
            read(&dir.join("client.key.pem"))?,
        ));
    }
    let endpoint = Endpoint::from_shared(url.to_owned())
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| format!("endpoint {url}: {e}"))?;
    Ok(endpoint.connect().await)
}

/// A connected client with the identity of the terminal in `terminal_dir`.
pub async fn client(
    world: &World,
    url: &str,
    terminal_dir: &Path,
) -> Result<ConfirmationClient<Channel>> {
    let channel = channel(world, url, Some(terminal_dir))
        .await?
        .map_err(|e| format!("connect to {url} as {}: {e}", terminal_dir.display()))?;
    Ok(ConfirmationClient::new(channel))
}

/// A card's user-authentication certificate (DER) and private key, from its profile: what a
/// test needs to sign a challenge binding as the card would.
#[derive(Debug)]
pub struct CardKeys {
    pub certificate: Vec<u8>,
    pub key: rsa::RsaPrivateKey,
}

impl CardKeys {
    /// The keys of the world's card of `kind` (`valid`, `revoked`, ...).
    pub fn of(world: &World, kind: &str) -> Result<CardKeys> {
        let rel = world.card(kind)?["profile"]
            .as_str()
            .ok_or("card without profile")?
            .to_owned();
        Self::from_profile(
            world,
            &rel,
            "user_auth_certificate",
            "user_auth_private_key",
        )
    }

    /// The keys of the world's phone `name` (`phone-01`, ...): its smartphone certificate and
    /// its own key, from the phone profile.
    pub fn of_phone(world: &World, name: &str) -> Result<CardKeys> {
        Self::from_profile(
            world,
            &format!("phones/{name}.json"),
            "certificate",
            "private_key",
        )
    }

    /// A certificate (PEM) and a PKCS#8 key (PEM) from two fields of a profile file.
    fn from_profile(world: &World, rel: &str, cert: &str, key: &str) -> Result<CardKeys> {
        let text =
            std::fs::read_to_string(world.dir.join(rel)).map_err(|e| format!("read {rel}: {e}"))?;
        let profile: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{rel}: {e}"))?;
        let field = |name: &str| {
            profile[name]
                .as_str()
                .ok_or_else(|| format!("{rel} has no {name}"))
        };
        let certificate = pem::parse(field(cert)?)
            .map_err(|e| format!("{rel}: certificate: {e}"))?
            .into_contents();
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(field(key)?)
            .map_err(|e| format!("{rel}: private key: {e}"))?;
        Ok(CardKeys { certificate, key })
    }

    /// What the card signs in PIN mode: RSASSA-PKCS1-v1_5 SHA-256 over the encoded binding
    /// (the card pads the DigestInfo of its SHA-256).
    pub fn sign(&self, binding: &onshi_proto::binding::ChallengeBinding<'_>) -> Result<Vec<u8>> {
        use rsa::sha2::{Digest, Sha256};
        let bytes = binding.encode().map_err(|e| e.to_string())?;
        self.key
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&bytes))
            .map_err(|e| format!("RSA signing failed: {e}"))
    }
}

/// A terminal's reader device key (`device-key.p8` in its folder, ECDSA P-256): what a test
/// needs to attest a face or visual check as the reader would.
#[derive(Debug)]
pub struct DeviceKey {
    pair: ring::signature::EcdsaKeyPair,
}

impl DeviceKey {
    /// The device key in `terminal_dir`.
    pub fn of(terminal_dir: &Path) -> Result<DeviceKey> {
        let path = terminal_dir.join("device-key.p8");
        let pkcs8 = read(&path)?;
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| format!("{}: not an ECDSA P-256 PKCS#8 key: {e}", path.display()))?;
        Ok(DeviceKey { pair })
    }

    /// The ASN.1 DER ECDSA P-256 SHA-256 signature of `message` (an encoded binding).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let sig = self
            .pair
            .sign(&ring::rand::SystemRandom::new(), message)
            .map_err(|e| format!("ECDSA signing failed: {e}"))?;
        Ok(sig.as_ref().to_vec())
    }

    /// The public key, as the store keeps it (the uncompressed point, 65 bytes).
    pub fn public_key(&self) -> &[u8] {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref()
    }
}
