"""Settings and secrets: the same parsing and messages as the Rust SDK's `config`."""

import unittest

from siphon_sdk import ConfigError, Secret, Setting, SettingSpec, parse, problems
from siphon_sdk.testing import FakeIo


class ParseTest(unittest.TestCase):
    def test_u64_accepts_toml_text(self) -> None:
        self.assertEqual((parse.u64(" 24 "), parse.u64("10_000")), (24, 10_000))
        for bad in ["-1", "1.5", "", "99999999999999999999999", "١٢"]:
            with self.assertRaises(ValueError, msg=bad):
                parse.u64(bad)

    def test_bool_list_names_and_urls(self) -> None:
        self.assertEqual((parse.bool("TRUE"), parse.bool("off")), (True, False))
        self.assertEqual(parse.list('["dlp", " malware "]'), ["dlp", "malware"])
        self.assertEqual(parse.list("dlp, malware,,"), ["dlp", "malware"])
        with self.assertRaises(ValueError):
            parse.list("[1, 2]")
        self.assertEqual(parse.names("a, b ,a"), ["a", "b"])
        for bad in ["a/../b", " , ", '"sso"']:
            with self.assertRaises(ValueError, msg=bad):
                parse.names(bad)
        self.assertEqual(parse.base_url("https://a.example/ "), "https://a.example")
        for bad in ["a.example", "https://", "https://a/?x", "https://u:p@a/", "ftp://a"]:
            with self.assertRaises(ValueError, msg=bad):
                parse.base_url(bad)


class SettingTest(unittest.TestCase):
    PAGE = Setting("page_size", "Page", "250", lambda v: parse.u64_in(v, 1, 250))
    URL = Setting("base_url", "Tenant", None, parse.base_url)
    KEY = Secret("client_secret", "Client secret")

    def test_defaults_and_values_parse_alike(self) -> None:
        self.assertEqual((self.PAGE.read(lambda _: None), self.PAGE.read(lambda _: "25")), (250, 25))
        with self.assertRaises(ConfigError) as caught:
            self.PAGE.read(lambda _: "251")
        self.assertEqual(str(caught.exception), 'config: setting `page_size` = "251" is invalid: must be between 1 and 250')
        with self.assertRaises(ConfigError) as caught:
            self.URL.read(lambda _: None)
        self.assertEqual(str(caught.exception), "config: setting `base_url` is required")
        self.assertEqual(self.PAGE.spec(), SettingSpec("page_size", "Page", False, False, "250"))
        self.assertTrue(self.URL.spec().required)

    def test_secrets_are_required_and_trimmed(self) -> None:
        self.assertEqual(self.KEY.read(lambda _: " s3cr3t\n"), "s3cr3t")
        with self.assertRaises(ConfigError) as caught:
            self.KEY.read(lambda _: None)
        self.assertEqual(str(caught.exception), "config: secret `client_secret` is required")
        with self.assertRaises(ConfigError):
            self.KEY.read(lambda _: "  ")
        spec = self.KEY.spec()
        self.assertTrue(spec.secret and spec.required and spec.default_value is None)

    def test_requirements_can_depend_on_another_setting(self) -> None:
        key = Secret("secret_key", "API 1.0 secret key", required_when=("api", "1.0"))
        app = Setting("app_id", "App", None, parse.text, required_when=("api", "1.0"))
        self.assertEqual(key.spec(), SettingSpec("secret_key", "API 1.0 secret key", False, True, None, ("api", "1.0")))
        self.assertFalse(app.spec().required)
        with self.assertRaises(ConfigError) as caught:
            key.read(lambda _: None)
        self.assertEqual(caught.exception.message, 'secret `secret_key` is required with api = "1.0"')

    def test_problems_lists_every_key(self) -> None:
        io = FakeIo(lambda r: None).with_settings(page_size="500")  # type: ignore[arg-type, return-value]
        self.assertEqual(
            problems([self.PAGE, self.URL, self.KEY, Secret("opt", "o", required=False)], io),
            [
                'setting `page_size` = "500" is invalid: must be between 1 and 250',
                "setting `base_url` is required",
                "secret `client_secret` is required",
            ],
        )


if __name__ == "__main__":
    unittest.main()
