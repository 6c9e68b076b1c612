from configparser import ConfigParser
import setuptools

# All settings are in settings.ini; edit there, not here.
config = ConfigParser(delimiters=['='])
config.read('settings.ini')
cfg = config['DEFAULT']

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    keywords=cfg['keywords'],
    author=cfg['author'],
    author_email=cfg['author_email'],
    license='Apache-2.0',
    url=cfg['git_url'],
    classifiers=[
        'Development Status :: 3 - Alpha',
        'Intended Audience :: Developers',
        'Framework :: Jupyter',
        'Programming Language :: Python :: 3',
    ],
    package_dir={'': '.'},  # a plain .pth for `pip install -e .`, without setuptools' editable-finder warning
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    package_data={cfg['lib_path']: ['*.npz', '*.LICENSE', '*.js']},
    install_requires=cfg.get('requirements', '').split(),
    extras_require={k[:-len('_requirements')]: cfg[k].split()  # dev, bench, peers
                    for k in cfg if k.endswith('_requirements') and k != 'requirements'},
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={
        'console_scripts': cfg.get('console_scripts', '').split(),
        'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
)
