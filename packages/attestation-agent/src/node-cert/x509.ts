// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill
// loaded first. Every agent module takes the x509 classes from here so the order holds.
import 'reflect-metadata';

export {
  KeyUsageFlags,
  KeyUsagesExtension,
  PemConverter,
  Pkcs10CertificateRequestGenerator,
  SubjectAlternativeNameExtension,
  X509Certificate,
} from '@peculiar/x509';
